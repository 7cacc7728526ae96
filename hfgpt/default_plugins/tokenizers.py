"""Built-in tokenizer strategies (placeholder until the tokenizers land)."""

from hfgpt import hookimpl


@hookimpl
def register_tokenizers(register):
    pass
