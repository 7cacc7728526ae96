"""The token stream: documents -> token ids -> one file-backed stream, of which every window is a view.

One engine for training, evaluation and packing:

1. Documents are tokenized with a batched `datasets.map` (cached, `num_proc`-parallel, progress bars) into an
   Arrow file, even for texts held in memory; each row keeps its document's ids and UTF-8 byte count.
2. Their ids are joined into one stream, documents separated by the tokenizer's EOS (`<|endoftext|>`), and
   written once to a flat int32 file that is memory-mapped. The per-document index (token and byte counts of
   the non-empty documents) is two numpy arrays in files beside it: 16 bytes a document, no Python objects.
3. Windows are views of the stream, by one rule (`window_starts`):

   * a window starting at `s` holds `length` inputs, tokens `s .. s+length-1`, and their targets, tokens
     `s+1 .. s+length` (the book's `(input, target)` pair);
   * windows start at 0, `stride`, 2·`stride`, ...;
   * **the tail**: training takes only the windows that fit whole, as the book's `GPTDatasetV1` does (the
     tokens after the last whole window are not trained on); evaluation (`cover_tail=True`) adds the one
     window that reaches the stream's last token, shorter than the others when the text ends inside it, so
     every token but the first is scored, and nothing is ever padded: a text shorter than a window is
     scored once, as it is.

   `within_documents=True` (packing documents one by one) applies the same rule to each document alone.

A document with no tokens adds nothing to the stream, not even a separator. `n_bytes` counts the UTF-8 bytes of
the documents that have tokens, whitespace and characters the tokenizer drops included (bits per byte).
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datasets import Dataset, IterableDataset
from datasets.fingerprint import generate_fingerprint, get_temporary_cache_files_directory

from hfgpt.data.sources import check_text_column
from hfgpt.errors import ConfigError, DataError

MAX_TOKEN_ID = int(np.iinfo(np.int32).max)
# Documents per tokenizing batch, where whole documents are in memory (they may be books): a batch's ids are
# Python ints (~36 bytes each) until they become arrays. 16 one-MB documents peaked ~200 MiB higher than 4,
# and that transient, not the corpus, made preparing 4x a corpus cost ~100 MiB more; 4 is no slower.
TOKENIZE_BATCH = 4


# --- tokens ---------------------------------------------------------------------------------------------
def tokenize(
    dataset, tokenizer, text_column: str = "text", num_proc: int | None = None, batch_size: int = 1000
):
    """A dataset of one row per document: `input_ids` (int32) and `n_bytes` (the text's UTF-8 bytes).

    A dataset that already has `input_ids` is used as it is (its byte counts are unknown). `Dataset` sources are
    tokenized into an Arrow file (cached beside a cached source, in the temporary cache directory otherwise);
    an `IterableDataset` is tokenized lazily.
    """
    columns = dataset.column_names or []
    if "input_ids" in columns:
        return dataset.select_columns(["input_ids"])
    check_text_column(dataset, text_column)
    if tokenizer is None:
        raise ConfigError("this source holds text: pass a tokenizer (e.g. hfgpt.GPT2BPETokenizer())")
    options = {
        "batched": True,
        # documents may be long (a book, a whole file): a few per batch bounds the memory a batch needs
        "batch_size": min(batch_size, TOKENIZE_BATCH),
        "remove_columns": columns,
    }
    if not isinstance(dataset, Dataset):  # windowed lazily (`window()`), where byte counts are not needed
        return dataset.map(_Encoder(tokenizer, text_column, count_bytes=False), **options)
    encoder = _Encoder(tokenizer, text_column)

    order = _balanced_order(dataset, text_column, num_proc)
    source = dataset if order is None else dataset.select(order)
    # datasets would hash the tokenizer itself on every call (0.7 s for GPT-2's); a fingerprint of what decides
    # the ids is stable and cheap. In-memory texts get their ids written to a file too.
    options.update(
        num_proc=num_proc,
        desc="Tokenizing",
        new_fingerprint=_key(generate_fingerprint(source), tokenizer_fingerprint(tokenizer), text_column),
        writer_batch_size=TOKENIZE_BATCH,
    )
    if not dataset.cache_files:
        options["cache_file_name"] = _temporary_file("hfgpt-tokens", ".arrow")
    tokens = source.map(encoder, **options)
    return tokens if order is None else tokens.select(np.argsort(order))  # back to the documents' order


def _key(*parts: Any) -> str:
    return hashlib.sha256("-".join(map(str, parts)).encode()).hexdigest()[:16]


def _balanced_order(dataset: Dataset, text_column: str, num_proc: int | None) -> np.ndarray | None:
    """A row order in which the `num_proc` shards of `map` hold about the same amount of text.

    `map(num_proc=k)` cuts the rows into k contiguous shards of equal row counts, and the shard with the most
    text decides the time: the standard library's files, in name order, split into 12.6 and 19.0 MB. Here
    rows are dealt to the shards by size, largest first, in snake order (0..k-1, k-1..0, ...), so that each
    shard gets its row count from datasets' split and about 1/k of the text; within a shard rows keep their
    order. Only the text's lengths are read. None when there is nothing to balance.
    """
    n = len(dataset)
    if num_proc is None or num_proc < 2 or n <= num_proc:
        return None
    if not pa.types.is_string(dataset.features[text_column].pa_type):
        return None  # not text: the tokenizer will say so
    lengths = np.concatenate(
        [
            pc.binary_length(batch[text_column]).fill_null(0).to_numpy(zero_copy_only=False)
            for batch in dataset.select_columns([text_column]).with_format("arrow").iter(batch_size=10_000)
        ]
    )
    rank = np.empty(n, dtype=np.int64)
    rank[np.argsort(-lengths, kind="stable")] = np.arange(n)
    seat, lap = rank % num_proc, rank // num_proc
    # the last, partial lap deals from shard 0 on, to the shards datasets gives one row more
    backwards = (lap % 2 == 1) & (rank < n - n % num_proc)
    shard = np.where(backwards, num_proc - 1 - seat, seat)
    return np.argsort(shard, kind="stable")


def tokenizer_fingerprint(tokenizer) -> str:
    """A hash of what decides a tokenizer's ids: its class, vocabulary, merges and special-token handling."""
    digest = hashlib.sha256(type(tokenizer).__name__.encode())
    digest.update(json.dumps(tokenizer.get_vocab(), sort_keys=True).encode())
    digest.update(repr(getattr(tokenizer, "merges", None)).encode())
    digest.update(
        repr((tokenizer.split_special_tokens, sorted(tokenizer.added_tokens_encoder.items()))).encode()
    )
    return digest.hexdigest()


def _temporary_file(prefix: str, suffix: str) -> str:
    """A file in datasets' temporary cache directory (removed when the Python session ends)."""
    return os.path.join(get_temporary_cache_files_directory(), f"{prefix}-{uuid.uuid4().hex}{suffix}")


class _Encoder:
    """`map`'s function: a batch of texts -> their ids (int32 arrays) and UTF-8 byte counts.

    With `num_proc`, datasets sends the function to every worker pickled by dill, whose pure-Python pickler
    takes over a second for GPT-2's tokenizer (three 50,000-entry tables), once per worker and one worker after
    another in the parent. The tokenizer is pickled with the standard (C) pickler instead, once: 0.07 s.
    """

    def __init__(self, tokenizer, text_column: str, count_bytes: bool = True):
        self.tokenizer, self.text_column, self.count_bytes = tokenizer, text_column, count_bytes
        self._pickled: bytes | None = None

    def __call__(self, batch: dict) -> dict:
        texts = batch[self.text_column]
        # int32 arrays, not lists of Python ints (28 bytes an id): a batch of long documents stays small
        ids = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
        columns = {"input_ids": [np.asarray(doc, dtype=np.int32) for doc in ids]}
        if self.count_bytes:
            columns["n_bytes"] = [len(text.encode("utf-8")) for text in texts]
        return columns

    def __reduce__(self):
        if self._pickled is None:
            try:
                self._pickled = pickle.dumps(self.tokenizer, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception:  # e.g. a tokenizer holding a lambda: leave it to dill
                return _Encoder, (self.tokenizer, self.text_column, self.count_bytes)
        return _unpickle_encoder, (self._pickled, self.text_column, self.count_bytes)


def _unpickle_encoder(pickled: bytes, text_column: str, count_bytes: bool) -> _Encoder:
    return _Encoder(pickle.loads(pickled), text_column, count_bytes)


# --- the stream -----------------------------------------------------------------------------------------
@dataclass
class TokenStream:
    """All documents' ids as one flat int32 array, documents separated by `separator` (if any), in a file.

    Memory-mapped, so only the windows being gathered are ever in memory, whatever the corpus's size; it
    pickles as its paths, so `num_proc` workers reopen it cheaply. `doc_lengths` (and `doc_bytes`) are the
    token (and UTF-8 byte) counts of the non-empty documents, in order.

    Attributes:
        n_tokens: tokens in the stream (separators included, none after the last document).
        max_id: the largest id in the stream (-1 when empty).
        n_bytes: UTF-8 bytes of the documents that have tokens; None when the ids came without text.
    """

    path: str
    n_tokens: int
    max_id: int
    separator: int | None
    index_path: str
    n_bytes: int | None = None
    _arrays: dict = field(default_factory=dict, repr=False)

    @classmethod
    def from_arrays(
        cls, tokens: np.ndarray, doc_lengths: np.ndarray, separator: int | None, max_id: int | None = None
    ) -> TokenStream:
        """A stream held in memory: the joined `tokens` and the non-empty documents' token counts."""
        tokens = np.asarray(tokens, dtype=np.int32)
        lengths = np.asarray(doc_lengths, dtype=np.int64)
        n_tokens = int(lengths.sum()) + (max(len(lengths) - 1, 0) if separator is not None else 0)
        top = checked_max_id(tokens[:n_tokens], MAX_TOKEN_ID) if max_id is None else max_id
        arrays = {"tokens": tokens[:n_tokens], "lengths": lengths, "bytes": np.zeros_like(lengths)}
        return cls(path="", n_tokens=n_tokens, max_id=top, separator=separator, index_path="", _arrays=arrays)

    def array(self) -> np.ndarray:
        if "tokens" not in self._arrays:
            self._arrays["tokens"] = np.memmap(self.path, dtype=np.int32, mode="r", shape=(self.n_tokens,))
        return self._arrays["tokens"]

    def _index(self, name: str) -> np.ndarray:
        if name not in self._arrays:
            self._arrays[name] = np.load(f"{self.index_path}.{name}.npy", mmap_mode="r")
        return self._arrays[name]

    @property
    def doc_lengths(self) -> np.ndarray:
        return self._index("lengths")

    @property
    def doc_bytes(self) -> np.ndarray:
        return self._index("bytes")

    @property
    def documents(self) -> int:
        return len(self.doc_lengths)

    @property
    def doc_starts(self) -> np.ndarray:
        step = np.asarray(self.doc_lengths, dtype=np.int64) + (self.separator is not None)
        return np.cumsum(step) - step

    def __getstate__(self) -> dict:
        if not self.path:  # held in memory
            return dict(self.__dict__)
        return {**self.__dict__, "_arrays": {}}  # workers memory-map the files themselves

    def window_starts(
        self, length: int, stride: int, within_documents: bool = False, cover_tail: bool = False
    ) -> np.ndarray:
        """The starts of the windows of `length` inputs, `stride` apart (see the module docstring's rule)."""
        if not within_documents:
            return window_starts(self.n_tokens, length, stride, cover_tail)
        lengths = np.asarray(self.doc_lengths, dtype=np.int64)
        counts = window_counts(lengths, length, stride, cover_tail)
        first = np.repeat(self.doc_starts, counts)
        rank = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        return first + rank * stride

    def gather(self, starts: np.ndarray, length: int) -> np.ndarray:
        """The windows at `starts` as rows of `length + 1` tokens (inputs and the last target); all of them must
        fit whole."""
        starts = np.asarray(starts, dtype=np.int64)
        if not len(starts):
            return np.zeros((0, length + 1), dtype=np.int32)
        low = int(starts.min())
        chunk = self.array()[low : int(starts.max()) + length + 1]
        return chunk[(starts - low)[:, None] + np.arange(length + 1)]


def window_counts(n_tokens: np.ndarray | int, length: int, stride: int, cover_tail: bool) -> np.ndarray:
    """How many windows a stream (or each document) of `n_tokens` gets: whole windows, `ceil((n - length) /
    stride)`; with `cover_tail`, windows until one reaches the last token (none for fewer than 2 tokens)."""
    n = np.asarray(n_tokens, dtype=np.int64)
    if not cover_tail:
        return np.maximum(0, -(-(n - length) // stride))
    return np.where(n >= 2, np.maximum(0, -(-(n - 1 - length) // stride)) + 1, 0)


def window_starts(n_tokens: int, length: int, stride: int, cover_tail: bool = False) -> np.ndarray:
    """Window starts 0, stride, 2·stride, ... in a stream of `n_tokens` (the module docstring's rule)."""
    return np.arange(int(window_counts(n_tokens, length, stride, cover_tail)), dtype=np.int64) * stride


def build_stream(
    source, tokenizer=None, *, text_column: str = "text", separator_id: int | None = None, num_proc=None
) -> TokenStream:
    """The token stream of a `datasets.Dataset` of texts (or of `input_ids`), written once and memory-mapped.

    The stream's files lie next to a cached dataset's Arrow files (reused by the next call on the same data and
    tokenizer), or in the temporary cache directory. `separator_id` defaults to the tokenizer's EOS.
    """
    if isinstance(source, IterableDataset):
        raise DataError("a streamed (iterable) dataset has no stream file: window it with window() instead")
    separator = separator_id if separator_id is not None else getattr(tokenizer, "eos_token_id", None)
    return stream_of_tokens(tokenize(source, tokenizer, text_column, num_proc), separator)


def stream_of_tokens(tokens: Dataset, separator: int | None) -> TokenStream:
    """Flatten a tokenized dataset (`tokenize`) into a TokenStream; written once per tokens and separator."""
    if tokens.cache_files:
        folder = os.path.dirname(tokens.cache_files[0]["filename"])
        path = os.path.join(folder, f"hfgpt-stream-{_key(generate_fingerprint(tokens), separator)}.int32")
    else:
        path = _temporary_file("hfgpt-stream", ".int32")
    index_path = path.removesuffix(".int32")
    meta_path = index_path + ".json"
    if os.path.exists(meta_path):
        return TokenStream(
            path=path, index_path=index_path, separator=separator, **json.loads(Path(meta_path).read_text())
        )

    lengths, n_bytes, max_id = [], [], -1 if separator is None else separator
    with_bytes = "n_bytes" in tokens.column_names
    out = tempfile.NamedTemporaryFile(dir=os.path.dirname(path), delete=False)
    try:
        for batch in tokens.with_format("arrow").iter(batch_size=TOKENIZE_BATCH):
            values, doc_lengths, batch_max_id = _join_batch(batch.column("input_ids"), separator)
            max_id = max(max_id, batch_max_id)
            lengths.append(doc_lengths)
            if with_bytes:
                counts = batch.column("n_bytes").to_numpy(zero_copy_only=False)
                n_bytes.append(counts[pc.list_value_length(batch.column("input_ids")).to_numpy() > 0])
            out.write(memoryview(values))  # no bytes copy: a batch of long documents is large enough
        out.close()
        all_lengths = np.concatenate(lengths or [np.zeros(0, np.int64)]).astype(np.int64)
        all_bytes = np.concatenate(n_bytes).astype(np.int64) if with_bytes and n_bytes else None
        np.save(f"{index_path}.lengths.npy", all_lengths)
        np.save(f"{index_path}.bytes.npy", all_bytes if all_bytes is not None else np.zeros_like(all_lengths))
        n_tokens = int(all_lengths.sum()) + (max(len(all_lengths) - 1, 0) if separator is not None else 0)
        meta = {
            "n_tokens": n_tokens,
            "max_id": max_id,
            "n_bytes": None if all_bytes is None else int(all_bytes.sum()),
        }
        # write then rename, the metadata last: an interrupted run never leaves a stream that looks complete
        os.replace(out.name, path)
        Path(meta_path + ".tmp").write_text(json.dumps(meta))
        os.replace(meta_path + ".tmp", meta_path)
    except BaseException:
        out.close()
        Path(out.name).unlink(missing_ok=True)
        raise
    return TokenStream(path=path, index_path=index_path, separator=separator, **meta)


def _join_batch(column, separator: int | None) -> tuple[np.ndarray, np.ndarray, int]:
    """One batch of documents (an Arrow list column of ids) as its part of the stream.

    Returns the int32 tokens, with `separator` (if any) after every non-empty document (the stream's last one
    lies beyond n_tokens, so no window reads it), the lengths of the non-empty documents, and the largest id
    (-1 if none). A pure function, so tests can check the joining at volume without building datasets.
    """
    doc_lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False)
    values = pc.list_flatten(column).to_numpy(zero_copy_only=False)
    max_id = checked_max_id(values, MAX_TOKEN_ID)
    values = values.astype(np.int32, copy=False)
    if separator is not None:
        ends = np.cumsum(doc_lengths)[doc_lengths > 0]
        values = np.insert(values, ends, np.int32(separator))
    return values, doc_lengths[doc_lengths > 0], max_id


def checked_max_id(values: np.ndarray, limit: int) -> int:
    """The largest token id in `values` (-1 if empty), refusing ids outside [0, limit] (the storage type's)."""
    if not len(values):
        return -1
    low, high = int(values.min()), int(values.max())
    if low < 0 or high > limit:
        raise DataError(
            f"token ids must lie in [0, {limit}], found {low if low < 0 else high}: the input_ids column does "
            "not hold token ids of this vocabulary"
        )
    return high


__all__ = [
    "MAX_TOKEN_ID",
    "TokenStream",
    "build_stream",
    "checked_max_id",
    "stream_of_tokens",
    "tokenize",
    "tokenizer_fingerprint",
    "window_counts",
    "window_starts",
]
