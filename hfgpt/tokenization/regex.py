"""RegexTokenizer: the classic word-level tokenizer, as a transformers tokenizer.

Text is split with ``([,.:;?_!"()']|--|\\s)`` (delimiters kept), pieces are stripped and empty ones
dropped; the vocabulary is every distinct piece of a corpus, sorted, followed by ``<|endoftext|>`` and
``<|unk|>``. Decoding joins tokens with spaces and removes the space before punctuation.
"""

from __future__ import annotations

import re

from hfgpt.tokenization.base import VocabularyTokenizer

SPLIT_PATTERN = r'([,.:;?_!"()\']|--|\s)'
# The same tokens as re.split(SPLIT_PATTERN) + strip + drop-empty, in one findall pass (tested to agree).
TOKEN_PATTERN = re.compile(r'--|[,.:;?_!"()\']|(?:(?!--)[^\s,.:;?_!"()\'])+')
DETOKENIZE_PATTERN = re.compile(r'\s+([,.?!"()\'])')


def split_words(text: str) -> list[str]:
    """The classic word split: delimiters are tokens, whitespace is dropped, case is kept."""
    return TOKEN_PATTERN.findall(text)


class RegexTokenizer(VocabularyTokenizer):
    r"""Word-level tokenizer whose vocabulary is built from a corpus (see `from_corpus`).

    Args: as `hfgpt.tokenization.base.VocabularyTokenizer` (`vocab_file` or `vocab`, special tokens,
    `add_bos`/`add_eos`, `strict`).
    """

    piece_name = "word"

    @classmethod
    def split(cls, text: str) -> list[str]:
        return split_words(text)

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        return DETOKENIZE_PATTERN.sub(r"\1", " ".join(tokens))


__all__ = ["RegexTokenizer", "SPLIT_PATTERN", "split_words"]
