"""A character-level tokenizer for hfgpt: one id per character of the training corpus.

Registered as the tokenizer strategy `"chars"`, so `hfgpt tokenize --tokenizer chars FILE` and
`hfgpt train --tokenizer chars` use it exactly like a built-in strategy, and hfgpt registers the class
with `AutoTokenizer`, so a model trained with it reloads anywhere hfgpt is installed.
"""

from __future__ import annotations

from hfgpt import hookimpl
from hfgpt.tokenization.base import VocabularyTokenizer

__version__ = "0.1.0"


class CharTokenizer(VocabularyTokenizer):
    """Every character is a token; the vocabulary is the corpus's sorted characters plus the special tokens.

    Args: as `hfgpt.tokenization.base.VocabularyTokenizer` (`vocab_file` or `vocab`, special tokens, `strict`).
    """

    piece_name = "character"

    @classmethod
    def split(cls, text: str) -> list[str]:
        return list(text)

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        return "".join(tokens)


@hookimpl
def register_tokenizers(register):
    register("chars", CharTokenizer)
