"""A character-level tokenizer for hfgpt: one id per character of the training corpus.

Registered as the tokenizer strategy `"chars"`, so `hfgpt tokenize --tokenizer chars FILE` and
`hfgpt train --tokenizer chars` use it exactly like a built-in strategy.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable

from transformers import PreTrainedTokenizer

from hfgpt import hookimpl
from hfgpt.tokenization_utils import FastEncodeMixin

__version__ = "0.1.0"
ENDOFTEXT, UNK = "<|endoftext|>", "<|unk|>"


class CharTokenizer(FastEncodeMixin, PreTrainedTokenizer):
    """Every character is a token; the vocabulary is the corpus's sorted characters plus two specials.

    Args:
        vocab_file (`str`, *optional*): a `vocab.json` written by `save_pretrained`.
        vocab (`dict[str, int]`, *optional*): the vocabulary itself.
    """

    vocab_files_names = {"vocab_file": "vocab.json"}
    model_input_names = ["input_ids", "attention_mask"]

    def __init__(self, vocab_file: str | None = None, vocab: dict[str, int] | None = None, **kwargs):
        if vocab is None:
            if vocab_file is None:
                raise ValueError("CharTokenizer needs a vocabulary: use CharTokenizer.from_corpus(texts)")
            with open(vocab_file, encoding="utf-8") as f:
                vocab = json.load(f)
        self.vocab = dict(vocab)
        self.ids_to_tokens = {i: t for t, i in self.vocab.items()}
        kwargs.setdefault("clean_up_tokenization_spaces", False)
        kwargs.setdefault("unk_token", UNK)
        kwargs.setdefault("eos_token", ENDOFTEXT)
        super().__init__(**kwargs)

    @classmethod
    def from_corpus(cls, texts: str | Iterable[str]) -> CharTokenizer:
        texts = [texts] if isinstance(texts, str) else list(texts)
        chars = sorted(set().union(*map(set, texts)) - {ENDOFTEXT, UNK}) if texts else []
        if not chars:
            raise ValueError("the corpus is empty: the 'chars' tokenizer needs text to learn its characters")
        return cls(vocab={token: i for i, token in enumerate([*chars, ENDOFTEXT, UNK])})

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def get_vocab(self) -> dict[str, int]:
        return {**self.vocab, **self.added_tokens_encoder}

    def _tokenize(self, text: str, **kwargs) -> list[str]:
        return list(text)

    def _convert_token_to_id(self, token: str) -> int:
        return self.vocab.get(token, self.unk_token_id)

    def _convert_id_to_token(self, index: int) -> str:
        return self.ids_to_tokens.get(index, self.unk_token)

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        return "".join(tokens)

    def _encode_text(self, text: str, split_special_tokens: bool) -> list[int]:
        if not split_special_tokens and ENDOFTEXT in text:
            pieces = text.split(ENDOFTEXT)
            ids: list[int] = []
            for i, piece in enumerate(pieces):
                if i:
                    ids.append(self.vocab[ENDOFTEXT])
                ids.extend(self._encode_text(piece, True))
            return ids
        unk = self.vocab[UNK]
        return [self.vocab.get(char, unk) for char in text]

    def save_vocabulary(self, save_directory: str, filename_prefix: str | None = None) -> tuple[str]:
        path = os.path.join(save_directory, (f"{filename_prefix}-" if filename_prefix else "") + "vocab.json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.vocab, f, ensure_ascii=False)
        return (path,)


def build(corpus: Iterable[str] | None = None, **options) -> CharTokenizer:
    if corpus is None:
        raise ValueError("the 'chars' tokenizer learns its characters from a corpus: pass one")
    return CharTokenizer.from_corpus(corpus)


@hookimpl
def register_tokenizers(register):
    register("chars", build)
