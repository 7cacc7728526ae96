"""Built-in positional-encoding strategies: learned, sinusoidal, rope, p-rope and none."""

from hfgpt.hookspecs import hookimpl


@hookimpl
def register_position_encodings(register):
    register("learned", "hfgpt.position_encoding:LearnedPositionEncoding")
    register("sinusoidal", "hfgpt.position_encoding:SinusoidalPositionEncoding")
    register("rope", "hfgpt.position_encoding:RotaryPositionEncoding")
    register("p-rope", "hfgpt.position_encoding:PartialRotaryPositionEncoding")
    register("none", "hfgpt.position_encoding:NoPositionEncoding")
