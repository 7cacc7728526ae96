"""Built-in positional-encoding strategies: learned, sinusoidal, rope and none."""

from hfgpt import hookimpl


@hookimpl
def register_position_encodings(register):
    from hfgpt import position_encoding as pe

    register("learned", pe.LearnedPositionEncoding)
    register("sinusoidal", pe.SinusoidalPositionEncoding)
    register("rope", pe.RotaryPositionEncoding)
    register("none", pe.NoPositionEncoding)
