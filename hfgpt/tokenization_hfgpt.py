"""RegexTokenizer: the classic word-level tokenizer, as a transformers tokenizer.

Text is split with ``([,.:;?_!"()']|--|\\s)`` (delimiters kept), pieces are stripped and empty ones
dropped; the vocabulary is every distinct piece of a corpus, sorted, followed by ``<|endoftext|>`` and
``<|unk|>``. Decoding joins tokens with spaces and removes the space before punctuation.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable

from transformers import AutoTokenizer, PreTrainedTokenizer

from hfgpt.configuration_hfgpt import HFGPTConfig
from hfgpt.tokenization_utils import FastEncodeMixin

SPLIT_PATTERN = r'([,.:;?_!"()\']|--|\s)'
# The same tokens as re.split(SPLIT_PATTERN) + strip + drop-empty, in one findall pass (tested to agree).
TOKEN_PATTERN = re.compile(r'--|[,.:;?_!"()\']|(?:(?!--)[^\s,.:;?_!"()\'])+')
DETOKENIZE_PATTERN = re.compile(r'\s+([,.?!"()\'])')
ENDOFTEXT, UNK = "<|endoftext|>", "<|unk|>"


def split_words(text: str) -> list[str]:
    """The classic word split: delimiters are tokens, whitespace is dropped, case is kept."""
    return TOKEN_PATTERN.findall(text)


class RegexTokenizer(FastEncodeMixin, PreTrainedTokenizer):
    r"""Word-level tokenizer whose vocabulary is built from a corpus (see `from_corpus`).

    Args:
        vocab_file (`str`, *optional*): a `vocab.json` (token -> id) written by `save_pretrained`.
        vocab (`dict[str, int]`, *optional*): the vocabulary itself, instead of `vocab_file`.
        unk_token (`str`, defaults to `"<|unk|>"`): replaces words missing from the vocabulary.
        eos_token (`str`, defaults to `"<|endoftext|>"`): separates documents; appended to each encoding
            only when `add_eos=True`.
        bos_token (`str`, *optional*): prepended to each encoding when `add_bos=True`.
        pad_token (`str`, *optional*): needed for `tok(batch, padding=True)`.
        add_bos / add_eos (`bool`, defaults to `False`): add BOS/EOS with `add_special_tokens=True`.
        strict (`bool`, defaults to `False`): raise on words missing from the vocabulary instead of mapping them
            to `unk_token`.
    """

    vocab_files_names = {"vocab_file": "vocab.json"}
    model_input_names = ["input_ids", "attention_mask"]

    def __init__(
        self,
        vocab_file: str | None = None,
        vocab: dict[str, int] | None = None,
        unk_token: str = UNK,
        eos_token: str = ENDOFTEXT,
        bos_token: str | None = None,
        pad_token: str | None = None,
        add_bos: bool = False,
        add_eos: bool = False,
        strict: bool = False,
        **kwargs,
    ):
        if vocab is None:
            if vocab_file is None:
                raise ValueError(
                    "RegexTokenizer needs a vocabulary: build one with RegexTokenizer.from_corpus(text), "
                    "or load a saved one with RegexTokenizer.from_pretrained(directory)."
                )
            vocab = _read_vocab(vocab_file)
        self.vocab = dict(vocab)
        self.ids_to_tokens = {i: t for t, i in self.vocab.items()}
        self.strict = strict
        self.add_bos, self.add_eos = add_bos, add_eos
        pattern = {
            (False, False): "none",
            (True, False): "bos",
            (False, True): "eos",
            (True, True): "bos_eos",
        }
        kwargs["special_tokens_pattern"] = pattern[(add_bos, add_eos)]
        kwargs.setdefault("clean_up_tokenization_spaces", False)
        super().__init__(
            unk_token=unk_token,
            eos_token=eos_token,
            bos_token=bos_token,
            pad_token=pad_token,
            add_bos=add_bos,
            add_eos=add_eos,
            strict=strict,
            **kwargs,
        )
        self._special_split = None

    @classmethod
    def from_corpus(
        cls,
        text_or_texts: str | Iterable[str],
        bos_token: str | None = None,
        eos_token: str | None = None,
        pad_token: str | None = None,
        **kwargs,
    ) -> RegexTokenizer:
        """Build the vocabulary from a corpus: `sorted(set(words))`, then `<|endoftext|>`, `<|unk|>`, then the
        optional BOS/EOS/PAD tokens in that order. A BOS or EOS given here is also added by `add_special_tokens`."""
        texts = [text_or_texts] if isinstance(text_or_texts, str) else text_or_texts
        words: set[str] = set()
        for text in texts:
            if not isinstance(text, str):
                raise TypeError(f"from_corpus expects str texts, got {type(text).__name__}")
            words.update(split_words(text))
        if not words:
            raise ValueError(
                "the corpus is empty: RegexTokenizer.from_corpus needs some text to build a vocabulary"
            )
        specials = [ENDOFTEXT, UNK] + [t for t in (bos_token, eos_token, pad_token) if t is not None]
        tokens = sorted(words - set(specials)) + list(dict.fromkeys(specials))
        return cls(
            vocab={token: i for i, token in enumerate(tokens)},
            bos_token=bos_token,
            eos_token=eos_token or ENDOFTEXT,
            pad_token=pad_token,
            add_bos=bos_token is not None,
            add_eos=eos_token is not None,
            **kwargs,
        )

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def get_vocab(self) -> dict[str, int]:
        return {**self.vocab, **self.added_tokens_encoder}

    def _tokenize(self, text: str, **kwargs) -> list[str]:
        return split_words(text)

    def _convert_token_to_id(self, token: str) -> int:
        return self.vocab.get(token, self.unk_token_id)

    def _convert_id_to_token(self, index: int) -> str:
        return self.ids_to_tokens.get(index, self.unk_token)

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        return DETOKENIZE_PATTERN.sub(r"\1", " ".join(tokens))

    def _encode_text(self, text: str, split_special_tokens: bool) -> list[int]:
        vocab = self.get_vocab() if self.added_tokens_encoder else self.vocab
        if split_special_tokens or not self.added_tokens_encoder:
            words = split_words(text)
        else:
            words = []
            for i, piece in enumerate(self._special_pattern().split(text)):
                words.extend([piece] if i % 2 else split_words(piece))
        unk = self.unk_token_id
        ids = [vocab.get(word, unk) for word in words]
        if self.strict and unk in ids:
            missing = sorted({w for w, i in zip(words, ids) if i == unk and w != self.unk_token})
            if missing:
                raise ValueError(
                    f"{len(missing)} word(s) not in the vocabulary: {', '.join(map(repr, missing[:10]))}"
                    f"{' ...' if len(missing) > 10 else ''}. Rebuild the vocabulary from a corpus that contains "
                    "them, or use strict=False to map them to <|unk|>."
                )
        return ids

    def _special_pattern(self) -> re.Pattern:
        specials = tuple(sorted(self.added_tokens_encoder, key=len, reverse=True))
        if self._special_split is None or self._special_split[0] != specials:
            self._special_split = (specials, re.compile("(" + "|".join(map(re.escape, specials)) + ")"))
        return self._special_split[1]

    def save_vocabulary(self, save_directory: str, filename_prefix: str | None = None) -> tuple[str]:
        path = os.path.join(save_directory, (f"{filename_prefix}-" if filename_prefix else "") + "vocab.json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.vocab, f, ensure_ascii=False, indent=0)
        return (path,)


def _read_vocab(path: str) -> dict[str, int]:
    try:
        with open(path, encoding="utf-8") as f:
            vocab = json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"vocabulary file {path} does not exist: save the tokenizer again") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"vocabulary file {path} is corrupt ({exc}); rebuild it with from_corpus") from None
    if not isinstance(vocab, dict) or not all(isinstance(i, int) for i in vocab.values()):
        raise ValueError(
            f"vocabulary file {path} must map tokens to integer ids; rebuild it with from_corpus"
        )
    if sorted(vocab.values()) != list(range(len(vocab))):
        raise ValueError(f"vocabulary file {path} has duplicate or missing ids; rebuild it with from_corpus")
    return vocab


AutoTokenizer.register(HFGPTConfig, tokenizer_class=RegexTokenizer)

__all__ = ["RegexTokenizer", "SPLIT_PATTERN", "split_words"]
