"""Built-in positional-encoding strategies (placeholder until the model lands)."""

from hfgpt import hookimpl


@hookimpl
def register_position_encodings(register):
    register("learned", object)
