"""Shared machinery of hfgpt's tokenizers.

* `FastEncodeMixin` encodes whole strings in one call of a fast engine before transformers sees the ids.
* `VocabularyTokenizer` is a tokenizer whose vocabulary is every distinct piece of a corpus (words for
  `RegexTokenizer`, characters for the `chars` plugin), with `vocab.json` reading/writing, special tokens,
  unknown pieces and strict mode; a subclass only says how text splits into pieces and how pieces join.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from itertools import chain, islice
from typing import Any, ClassVar

from transformers import BatchEncoding, PreTrainedTokenizer
from transformers.tokenization_utils_base import PaddingStrategy, TruncationStrategy

from hfgpt.errors import TokenizerError, TokenizerInputError

ENDOFTEXT, UNK = "<|endoftext|>", "<|unk|>"


class FastEncodeMixin:
    """Encode whole strings in one engine call, then hand the ids to transformers.

    transformers' Python tokenizers split special tokens with a trie and look up every token in Python,
    which costs far more than the tokenization itself. A subclass implements `_encode_text` (one string
    to ids, honouring added/special tokens unless `split_special_tokens`); this mixin feeds the ids to
    `PreTrainedTokenizer._encode_plus`, so truncation, padding, pairs and tensors behave as usual.

    Before any encoding, input that is not text or ids, or that mixes the two (`[[1, "a"]]`, a batch of id
    rows and text rows, ids with a text pair), is refused with `TokenizerInputError`: transformers' Python
    backend would hand such ids on unchecked. Pre-tokenized words (`is_split_into_words=True`) encode as
    transformers' GPT-2 tokenizer with `add_prefix_space=True` encodes them.
    """

    def _encode_text(self, text: str, split_special_tokens: bool) -> list[int]:
        raise NotImplementedError

    def _encode_texts(self, texts: Sequence[str], split_special_tokens: bool) -> list[list[int]]:
        return [self._encode_text(text, split_special_tokens) for text in texts]

    def _text_to_ids(self, text: str, split_special_tokens: bool) -> list[int] | str:
        # Text with no tokens (e.g. only whitespace for RegexTokenizer) becomes "": transformers rejects an
        # empty id list but encodes "" fine.
        return (self._encode_text(text, split_special_tokens) if text else None) or ""

    def _inputs_to_ids(self, text: Any, text_pair: Any, words: bool, split_special_tokens: bool) -> tuple:
        """`text` and `text_pair` with every text (with `words`, every list of words) replaced by its ids, nested
        as they were, so transformers reads batches and pairs as it would have read the text. All the texts are
        encoded in one `_encode_texts` call. Input that mixes ids and text, or holds anything but str and int,
        is refused before any encoding."""
        found = _Found(type(self).__name__)
        for value in (text, text_pair):
            if isinstance(value, (list, tuple)) and not value and not words:
                raise TokenizerInputError(
                    f"{found.name} expects a str, a list of str or a list of int ids, got an empty "
                    f'{type(value).__name__}: pass at least one text ("" encodes to no ids).'
                )
            if value is not None:
                found.gather(value, words)
        if found.text is not None and found.ids is not None:
            raise TokenizerInputError(
                f"{found.name} expects text or token ids in one call, not both: got text ({found.text!r:.40}) "
                f"and ids ({found.ids!r:.40}). Encode them in separate calls, or decode the ids to text first "
                "with tok.decode(ids)."
            )
        if words:
            found.texts = self._word_texts(found.texts, split_special_tokens)
        encoded = iter(self._encode_texts(found.texts, split_special_tokens) if found.texts else ())
        return _fill(text, words, encoded, top=True), _fill(text_pair, words, encoded, top=True)

    def _word_texts(self, words: list[str], split_special_tokens: bool) -> list[str]:
        """Pre-tokenized words as texts: a space before each piece of a word that lacks one, special tokens left
        alone, as transformers' GPT-2 tokenizer with `add_prefix_space=True` encodes the words of
        `is_split_into_words` input. A word then encodes as it does inside a sentence: word-level tokenizers drop
        the space, characters and byte-level BPE keep it."""
        if split_special_tokens or not self.added_tokens_encoder:
            return [word if not word or word[0] == " " else " " + word for word in words]
        pattern = self._added_tokens_pattern()
        return [
            "".join(
                part if i % 2 or not part or part[0] == " " else " " + part for i, part in enumerate(parts)
            )
            for parts in map(pattern.split, words)  # text, special, text, ..., text
        ]

    _added_split: tuple[tuple[str, ...], re.Pattern] | None = None

    def _added_tokens_pattern(self) -> re.Pattern:
        """A regex that splits text around the added (special) tokens, longest first, keeping them."""
        tokens = tuple(sorted(self.added_tokens_encoder, key=len, reverse=True))
        if self._added_split is None or self._added_split[0] != tokens:
            self._added_split = (tokens, re.compile("(" + "|".join(map(re.escape, tokens)) + ")"))
        return self._added_split[1]

    _handing_back = False  # True while transformers hands back, one sequence at a time, ids made here

    def _encode_plus(self, text, text_pair=None, is_split_into_words: bool = False, **kwargs):
        if self._handing_back:  # ids this tokenizer just made: checking them again costs as much as encoding
            return super()._encode_plus(text, text_pair, is_split_into_words=is_split_into_words, **kwargs)
        split = kwargs.get("split_special_tokens", self.split_special_tokens)
        if is_split_into_words or not isinstance(text, str) or not isinstance(text_pair, (str, type(None))):
            if text_pair is None and not is_split_into_words and _plain_batch(text, kwargs):
                return self._encode_plain_batch(text, **{**kwargs, "split_special_tokens": split})
            text, text_pair = self._inputs_to_ids(text, text_pair, is_split_into_words, split)
        else:
            text = self._text_to_ids(text, split)
            text_pair = None if text_pair is None else self._text_to_ids(text_pair, split)
        self._handing_back = True
        try:  # words are ids now: what is left is a batch, pair or sequence of ids or ""
            return super()._encode_plus(text, text_pair, is_split_into_words=False, **kwargs)
        finally:
            self._handing_back = False

    def _encode_plain_batch(
        self,
        texts: Sequence[str],
        split_special_tokens: bool = False,
        add_special_tokens: bool = True,
        max_length: int | None = None,
        return_tensors=None,
        return_token_type_ids: bool | None = None,
        return_attention_mask: bool | None = None,
        verbose: bool = True,
        **_,
    ) -> BatchEncoding:
        """A batch of texts with no padding, truncation or extra outputs: what transformers' batch path returns,
        without its per-text `prepare_for_model` and `pad` (a tenth of the time of encoding source files)."""
        ids = self._encode_texts(texts, split_special_tokens)
        if return_token_type_ids is None:
            return_token_type_ids = "token_type_ids" in self.model_input_names
        if return_attention_mask is None:
            return_attention_mask = "attention_mask" in self.model_input_names
        if add_special_tokens:
            types = (
                [self.create_token_type_ids_from_sequences(row) for row in ids]
                if return_token_type_ids
                else []
            )
            ids = [self.build_inputs_with_special_tokens(row) for row in ids]
        else:
            types = [[0] * len(row) for row in ids] if return_token_type_ids else []
        outputs: dict[str, list] = {"input_ids": ids}
        if return_token_type_ids:
            outputs["token_type_ids"] = types
        if return_attention_mask:
            outputs["attention_mask"] = [[1] * len(row) for row in ids]
        for row in ids:
            self._eventual_warn_about_too_long_sequence(row, max_length, verbose)
        return BatchEncoding(outputs, tensor_type=return_tensors)

    def save_pretrained(self, save_directory, *args, **kwargs):
        """Save as transformers does, plus `auto_map` and the code file it names (see `hfgpt.remote_code`)."""
        from hfgpt.remote_code import write_tokenizer_code

        files = super().save_pretrained(save_directory, *args, **kwargs)
        write_tokenizer_code(str(save_directory), type(self))
        return files

    @classmethod
    def register_for_auto_class(cls, auto_class="AutoTokenizer"):
        """Nothing to do: `save_pretrained` writes hfgpt's own `auto_map` and code file instead of the copy of
        the class's source that transformers would write after a `trust_remote_code` load."""

    def _decode(self, token_ids, skip_special_tokens: bool = False, **kwargs) -> str:
        ids = [token_ids] if isinstance(token_ids, int) else list(token_ids)
        size = len(self)
        bad = [i for i in ids if not isinstance(i, int) or not 0 <= i < size]
        if bad:
            raise TokenizerError(
                f"cannot decode token id(s) {bad[:5]}{'...' if len(bad) > 5 else ''}: this tokenizer has {size} ids "
                f"(0..{size - 1}). Were these ids produced by a different tokenizer or a model with a larger vocab_size?"
            )
        return super()._decode(ids, skip_special_tokens=skip_special_tokens, **kwargs)


# What `tok(texts)` passes to `_encode_plus` when nothing beyond ids and masks is asked for.
_PLAIN_OPTIONS = frozenset(
    {
        "add_special_tokens", "max_length", "stride", "pad_to_multiple_of", "padding_side", "padding_strategy",
        "truncation_strategy", "return_tensors", "return_token_type_ids", "return_attention_mask", "verbose",
        "split_special_tokens", "return_length", "return_offsets_mapping", "return_overflowing_tokens",
        "return_special_tokens_mask",
    }
)  # fmt: skip
_EXTRA_OUTPUTS = (
    "return_length",
    "return_offsets_mapping",
    "return_overflowing_tokens",
    "return_special_tokens_mask",
)


def _plain_batch(text: Any, kwargs: dict) -> bool:
    """Whether `text` is a batch of texts and `kwargs` ask for no padding, truncation or extra outputs."""
    return (
        isinstance(text, (list, tuple))
        and bool(text)
        and all(isinstance(item, str) for item in text)
        and kwargs.keys() <= _PLAIN_OPTIONS
        and kwargs.get("padding_strategy", PaddingStrategy.DO_NOT_PAD) == PaddingStrategy.DO_NOT_PAD
        and kwargs.get("truncation_strategy", TruncationStrategy.DO_NOT_TRUNCATE)
        == TruncationStrategy.DO_NOT_TRUNCATE
        and not any(kwargs.get(name) for name in _EXTRA_OUTPUTS)
    )


_NOTHING = object()  # no bad item found (None is one)
# Lists nest at most this deep in what transformers accepts: a batch of pairs of word lists (or of ids).
_MAX_NESTING = 4


class _Found:
    """What an input holds: its texts (or words) in order, and the first text and the first ids met."""

    def __init__(self, name: str):
        self.name = name
        self.texts: list[str] = []
        self.text: Any = None
        self.ids: Any = None

    def gather(self, value: Any, words: bool, depth: int = 0) -> None:
        """Record the texts and ids in `value`; raise on anything else, or on ids and text in one list."""
        if isinstance(value, str) and words:  # transformers' GPT-2 tokenizer refuses it too
            raise TokenizerInputError(
                f"{self.name} expects lists of words with is_split_into_words=True, got a str ({value!r:.60}). "
                "Split it into words (e.g. text.split()), or leave is_split_into_words False."
            )
        if isinstance(value, str):
            self.texts.append(value)
            self.text = value if self.text is None else self.text
            return
        if not isinstance(value, (list, tuple)):
            raise TokenizerInputError(
                f"{self.name} expects text as a str or a list of str, got {type(value).__name__} "
                f"({value!r:.60}). Convert it with str(...) or pass token ids as a list of int."
            )
        if depth == _MAX_NESTING:
            raise TokenizerInputError(
                f"{self.name} expects at most a batch of pairs of word lists, got lists nested deeper "
                f"({value!r:.60}). Flatten the batch to one list of texts (or of id lists)."
            )
        kinds = set(map(type, value))  # one pass in C: ids and word lists are not walked in Python
        if kinds == {int}:
            self.ids = value if self.ids is None else self.ids
            return
        if words and kinds == {str}:
            self.texts.extend(value)
            self.text = value if self.text is None else self.text
            return
        if int in kinds and str in kinds:
            raise TokenizerInputError(
                f"{self.name} expects text or token ids, got a list holding both str and int ({value!r:.60}). "
                "Pass the text and the ids in separate calls, or decode the ids to text first with tok.decode(ids)."
            )
        bad = next((item for item in value if not isinstance(item, (str, list, tuple))), _NOTHING)
        if bad is not _NOTHING:
            raise TokenizerInputError(
                f"{self.name} expects text (str) or token ids (int), got {type(bad).__name__} ({bad!r:.40}) "
                f"in {value!r:.60}. Convert it with str(...) for text, or pass ids as lists of int only."
            )
        for item in value:
            self.gather(item, words, depth + 1)


def _fill(value: Any, words: bool, encoded: Iterator[list[int]], top: bool = False) -> Any:
    """`value` with each text (with `words`, each list of words) replaced by the next ids from `encoded`."""
    if value is None:
        return None
    if isinstance(value, str):
        return next(encoded) or ""
    if not value:  # an empty batch stays one; an empty sequence (of words or ids) encodes like ""
        return value if top and not words else ""
    kinds = set(map(type, value))
    if kinds == {int}:  # transformers adds special tokens with `ids + [...]`, which a tuple of ids fails
        return value if isinstance(value, list) else list(value)
    if words and kinds == {str}:
        return list(chain.from_iterable(islice(encoded, len(value)))) or ""
    items = [_fill(item, words, encoded) for item in value]
    return tuple(items) if isinstance(value, tuple) else items


class VocabularyTokenizer(FastEncodeMixin, PreTrainedTokenizer):
    r"""A tokenizer whose vocabulary is the distinct pieces of a corpus, plus special tokens.

    Subclasses set `split(text)` (text to pieces, e.g. words or characters) and `convert_tokens_to_string`.

    Args:
        vocab_file (`str`, *optional*): a `vocab.json` (token -> id) written by `save_pretrained`.
        vocab (`dict[str, int]`, *optional*): the vocabulary itself, instead of `vocab_file`.
        unk_token (`str`, defaults to `"<|unk|>"`): replaces pieces missing from the vocabulary.
        eos_token (`str`, defaults to `"<|endoftext|>"`): separates documents; appended to each encoding
            only when `add_eos=True`.
        bos_token (`str`, *optional*): prepended to each encoding when `add_bos=True`.
        pad_token (`str`, *optional*): needed for `tok(batch, padding=True)`.
        add_bos / add_eos (`bool`, defaults to `False`): add BOS/EOS with `add_special_tokens=True`.
        strict (`bool`, defaults to `False`): raise on pieces missing from the vocabulary instead of mapping
            them to `unk_token`.
    """

    vocab_files_names: ClassVar[dict[str, str]] = {"vocab_file": "vocab.json"}
    model_input_names: ClassVar[list[str]] = ["input_ids", "attention_mask"]
    piece_name: ClassVar[str] = "piece"  # what `split` yields, for messages ("word", "character")

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
                name = type(self).__name__
                raise TokenizerError(
                    f"{name} needs a vocabulary: a saved tokenizer directory must hold its vocab.json (save the "
                    f"tokenizer again), or build one with {name}.from_corpus(texts)"
                )
            vocab = read_vocab(vocab_file)
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

    @classmethod
    def split(cls, text: str) -> list[str]:
        """The pieces of `text` that become tokens."""
        raise NotImplementedError

    @classmethod
    def from_corpus(
        cls,
        corpus: str | Iterable[str],
        *,
        bos_token: str | None = None,
        eos_token: str | None = None,
        pad_token: str | None = None,
        strict: bool = False,
    ):
        """Build the vocabulary from a corpus: `sorted(set(pieces))`, then `<|endoftext|>`, `<|unk|>`, then the
        optional BOS/EOS/PAD tokens in that order. A BOS or EOS given here is also added by `add_special_tokens`."""
        if corpus is None:
            raise TokenizerError(
                f"{cls.__name__} learns its vocabulary from a corpus: pass one (e.g. training texts)"
            )
        # bytes are iterable (as ints) and b"" as nothing at all; a number is not iterable: both would fail with
        # a message about something else ("the corpus is empty", "'int' object is not iterable").
        if isinstance(corpus, (bytes, bytearray)) or not isinstance(corpus, (str, Iterable)):
            raise TokenizerInputError(
                f"{cls.__name__}.from_corpus expects a str or an iterable of str, got {type(corpus).__name__} "
                f"({corpus!r:.40}): decode bytes first, e.g. data.decode('utf-8')"
            )
        texts = [corpus] if isinstance(corpus, str) else corpus
        pieces: set[str] = set()
        for text in texts:
            if not isinstance(text, str):
                raise TokenizerInputError(
                    f"{cls.__name__}.from_corpus expects str texts, got {type(text).__name__} ({text!r:.40}): "
                    "decode bytes first, e.g. data.decode('utf-8')"
                )
            pieces.update(cls.split(text))
        if not pieces:
            raise TokenizerError(f"the corpus is empty: {cls.__name__}.from_corpus needs some text")
        specials = [ENDOFTEXT, UNK] + [t for t in (bos_token, eos_token, pad_token) if t is not None]
        tokens = sorted(pieces - set(specials)) + list(dict.fromkeys(specials))
        return cls(
            vocab={token: i for i, token in enumerate(tokens)},
            bos_token=bos_token,
            eos_token=eos_token or ENDOFTEXT,
            pad_token=pad_token,
            add_bos=bos_token is not None,
            add_eos=eos_token is not None,
            strict=strict,
        )

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def get_vocab(self) -> dict[str, int]:
        return {**self.vocab, **self.added_tokens_encoder}

    def _tokenize(self, text: str, **kwargs) -> list[str]:
        return self.split(text)

    def _convert_token_to_id(self, token: str) -> int | None:
        index = self.vocab.get(token)
        return unknown_token_id(self, self.vocab) if index is None else index

    def _convert_id_to_token(self, index: int) -> str:
        return self.ids_to_tokens.get(index, self.unk_token)

    def _encode_text(self, text: str, split_special_tokens: bool) -> list[int]:
        vocab = self.get_vocab() if self.added_tokens_encoder else self.vocab
        if split_special_tokens or not self.added_tokens_encoder:
            pieces = self.split(text)
        else:  # special tokens are single tokens, whatever `split` would make of them
            pieces = []
            for i, part in enumerate(self._added_tokens_pattern().split(text)):
                pieces.extend([part] if i % 2 else self.split(part))
        unk = self.unk_token_id
        ids = [vocab.get(piece, unk) for piece in pieces]
        if (self.strict or unk is None) and unk in ids:  # without an unknown token, a missing piece has no id
            missing = sorted({p for p, i in zip(pieces, ids) if i == unk and p != self.unk_token})
            if missing:
                fix = (
                    "use strict=False to map them to"
                    if unk is not None
                    else "set tok.unk_token to map them to"
                )
                raise TokenizerError(
                    f"{len(missing)} {self.piece_name}(s) not in the vocabulary: "
                    f"{', '.join(map(repr, missing[:10]))}{' ...' if len(missing) > 10 else ''}. Rebuild the "
                    f"vocabulary from a corpus that contains them, or {fix} an unknown token such as <|unk|>."
                )
        return ids

    def save_vocabulary(self, save_directory: str, filename_prefix: str | None = None) -> tuple[str]:
        path = os.path.join(save_directory, (f"{filename_prefix}-" if filename_prefix else "") + "vocab.json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.vocab, f, ensure_ascii=False, indent=0)
        return (path,)


def unknown_token_id(tok: PreTrainedTokenizer, vocab: dict[str, int]) -> int | None:
    """The id of `tok.unk_token` (None without one), for `_convert_token_to_id`'s unknown tokens; `vocab` is the
    tokenizer's own vocabulary. Looked up directly: `tok.unk_token_id` converts the unknown token back through
    `_convert_token_to_id`, which would call itself without end when that token is not in the vocabulary (as after
    `tok.unk_token_id = id` of an ordinary token)."""
    unk = tok.unk_token
    return tok._added_tokens_encoder.get(unk, vocab.get(unk)) if unk is not None else None


def read_vocab(path: str) -> dict[str, int]:
    """A `vocab.json` mapping tokens to the ids 0..n-1; a missing or damaged file is a clear error."""
    try:
        with open(path, encoding="utf-8") as f:
            vocab = json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"vocabulary file {path} does not exist: save the tokenizer again") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TokenizerError(
            f"vocabulary file {path} is corrupt ({exc}); rebuild it with from_corpus"
        ) from None
    if not isinstance(vocab, dict) or not all(
        isinstance(i, int) and not isinstance(i, bool) for i in vocab.values()
    ):
        raise TokenizerError(
            f"vocabulary file {path} must map tokens to integer ids; rebuild it with from_corpus"
        )
    if sorted(vocab.values()) != list(range(len(vocab))):
        raise TokenizerError(
            f"vocabulary file {path} has duplicate or missing ids; rebuild it with from_corpus"
        )
    return vocab


__all__ = [
    "ENDOFTEXT",
    "UNK",
    "FastEncodeMixin",
    "VocabularyTokenizer",
    "read_vocab",
    "unknown_token_id",
]
