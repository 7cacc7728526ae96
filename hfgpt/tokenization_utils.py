"""Shared machinery for hfgpt's tokenizers: whole-string fast encoding behind the transformers API."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class FastEncodeMixin:
    """Encode whole strings in one engine call, then hand the ids to transformers.

    transformers' Python tokenizers split special tokens with a trie and look up every token in Python,
    which costs far more than the tokenization itself. A subclass implements `_encode_text` (one string
    to ids, honouring added/special tokens unless `split_special_tokens`); this mixin feeds the ids to
    `PreTrainedTokenizer._encode_plus`, so truncation, padding, pairs and tensors behave as usual.
    """

    def _encode_text(self, text: str, split_special_tokens: bool) -> list[int]:
        raise NotImplementedError

    def _encode_texts(self, texts: Sequence[str], split_special_tokens: bool) -> list[list[int]]:
        return [self._encode_text(text, split_special_tokens) for text in texts]

    def _texts_to_ids(self, value: Any, split_special_tokens: bool) -> Any:
        if value is None:
            return None
        # Text with no tokens (e.g. only whitespace for RegexTokenizer) becomes "": transformers rejects an
        # empty id list but encodes "" fine.
        if isinstance(value, str):
            return (self._encode_text(value, split_special_tokens) if value else None) or ""
        if isinstance(value, (list, tuple)):
            if value and isinstance(value[0], int):
                return value  # ids (transformers hands batches back one sequence at a time): nothing to check
            if value and all(isinstance(item, str) for item in value):
                encoded = self._encode_texts(value, split_special_tokens)
                return [ids or "" for ids in encoded]
            bad = next((item for item in value if isinstance(item, (bytes, bytearray, float, dict))), None)
            if bad is None:
                return value  # ids, pairs or pre-tokenized input: transformers handles them
            value = bad
        raise TypeError(
            f"{type(self).__name__} expects text as a str or a list of str, got {type(value).__name__} "
            f"({value!r:.60}). Convert it with str(...) or pass token ids as a list of int."
        )

    def _encode_plus(self, text, text_pair=None, is_split_into_words: bool = False, **kwargs):
        if not is_split_into_words:
            split = kwargs.get("split_special_tokens", self.split_special_tokens)
            text = self._texts_to_ids(text, split)
            text_pair = self._texts_to_ids(text_pair, split)
        return super()._encode_plus(text, text_pair, is_split_into_words=is_split_into_words, **kwargs)

    def _decode(self, token_ids, skip_special_tokens: bool = False, **kwargs) -> str:
        ids = [token_ids] if isinstance(token_ids, int) else list(token_ids)
        size = len(self)
        bad = [i for i in ids if not isinstance(i, int) or not 0 <= i < size]
        if bad:
            raise ValueError(
                f"cannot decode token id(s) {bad[:5]}{'...' if len(bad) > 5 else ''}: this tokenizer has {size} ids "
                f"(0..{size - 1}). Were these ids produced by a different tokenizer or a model with a larger vocab_size?"
            )
        return super()._decode(ids, skip_special_tokens=skip_special_tokens, **kwargs)
