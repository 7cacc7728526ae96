"""Sliding-window training samples: text -> token ids -> fixed-length windows, built with `datasets.map`.

The classic `GPTDatasetV1` semantics, made scalable:

1. Documents are tokenized with a batched `datasets.map` (cached, `num_proc`-parallel, progress bars),
   into an Arrow file even for texts held in memory.
2. Their ids are joined into one token stream, documents separated by the tokenizer's EOS
   (`<|endoftext|>`), and written once to a flat int32 file (memory-mapped): no step holds the corpus's
   text or ids in Python objects.
3. A batched `datasets.map` over the window starts 0, stride, 2*stride, ... (while start + max_length <
   number of tokens) gathers every window with numpy fancy indexing.

Each sample has two columns, the book's pair (input, target) = (tokens[s:s+L], tokens[s+1:s+L+1]):

* ``input_ids``    = tokens[s : s+L]       — the book's *input*
* ``shift_labels`` = tokens[s+1 : s+L+1]   — the book's *target*, already shifted by one

transformers' causal-LM loss takes ``shift_labels`` as the targets, so a model trained on these columns
(plain loop or `Trainer`) optimises exactly the book's loss: all L targets of every window.

The columns are stored in the smallest integer type that holds the vocabulary: uint16 up to 65,536 ids
(GPT-2's 50,257), int32 beyond (Megatron-LM's and nanoGPT's choice), a quarter of int64's bytes to write
and read back. The returned dataset is formatted as torch, which widens them to `torch.long` as rows are
read: that is the one place stored ids become model inputs.
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
from datasets import Dataset, DatasetDict, Features, IterableDataset, Sequence, Value
from datasets.fingerprint import get_temporary_cache_files_directory

from hfgpt.data.sources import as_dataset, check_text_column
from hfgpt.errors import ConfigError, DataError

WINDOW_COLUMNS = ("input_ids", "shift_labels")
MAX_TOKEN_ID = int(np.iinfo(np.int32).max)
# Documents per tokenizing batch, where whole documents are in memory (they may be books): a batch's ids are
# Python ints (~36 bytes each) until they become arrays. 16 one-MB documents peaked ~200 MiB higher than 4,
# and that transient, not the corpus, made preparing 4x a corpus cost ~100 MiB more; 4 is no slower.
TOKENIZE_BATCH = 4


def window_dtype(vocab_size: int) -> np.dtype:
    """The smallest integer type that holds ids 0 .. vocab_size - 1: uint16, else int32."""
    return np.dtype(np.uint16) if vocab_size <= 2**16 else np.dtype(np.int32)


def window_features(dtype: np.dtype) -> Features:
    return Features({name: Sequence(Value(np.dtype(dtype).name)) for name in WINDOW_COLUMNS})


def check_window_args(max_length: Any, stride: Any) -> None:
    for name, value in (("max_length", max_length), ("stride", stride)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value <= 0:
            raise ConfigError(f"{name} must be a positive integer, got {name}={value!r}")


# --- tokens ---------------------------------------------------------------------------------------------
def _tokenize(dataset, tokenizer, text_column: str, num_proc: int | None, batch_size: int):
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
    if not isinstance(dataset, Dataset):
        return dataset.map(_Encoder(tokenizer, text_column), **options)

    order = _balanced_order(dataset, text_column, num_proc)
    source = dataset
    if order is not None:
        source = dataset.select(order, new_fingerprint=_derive(dataset._fingerprint, f"balanced-{num_proc}"))
    # datasets would hash the tokenizer itself on every call (0.7 s for GPT-2's); a fingerprint of what
    # decides the ids is stable and cheap. In-memory texts get their ids written to a file too.
    options.update(
        num_proc=num_proc,
        desc="Tokenizing",
        new_fingerprint=_derive(source._fingerprint, tokenizer_fingerprint(tokenizer)),
        writer_batch_size=TOKENIZE_BATCH,
    )
    if not dataset.cache_files:
        options["cache_file_name"] = _temporary_file("hfgpt-tokens")
    tokens = source.map(_Encoder(tokenizer, text_column), **options)
    if order is not None:  # back to the documents' order
        tokens = tokens.select(np.argsort(order), new_fingerprint=_derive(tokens._fingerprint, "unbalanced"))
    return tokens


def _derive(fingerprint: str, change: str) -> str:
    return hashlib.sha256(f"{fingerprint}-{change}".encode()).hexdigest()[:16]


def _balanced_order(dataset: Dataset, text_column: str, num_proc: int | None) -> np.ndarray | None:
    """A row order in which the `num_proc` shards of `map` hold about the same amount of text.

    `map(num_proc=k)` cuts the rows into k contiguous shards of equal row counts, and the shard with the most
    text decides the time: the standard library's files, in name order, split into 12.6 and 19.0 MB. Here
    rows are dealt to the shards by size, largest first, in snake order (0..k-1, k-1..0, ...), so that each
    shard gets its row count from datasets' split and about 1/k of the text; within a shard rows keep their
    order. Only the text column's offsets are read. None when there is nothing to balance.
    """
    n, column = len(dataset), dataset.data.column(text_column)
    if num_proc is None or num_proc < 2 or n <= num_proc:
        return None
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        return None  # not text: the tokenizer will say so
    lengths = pc.binary_length(column).fill_null(0).to_numpy(zero_copy_only=False)
    if dataset._indices is not None:  # a selection, shuffle or split of the table's rows
        lengths = lengths[dataset._indices.column(0).to_numpy()]
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


def _temporary_file(prefix: str) -> str:
    """A file in datasets' temporary cache directory (removed when the Python session ends)."""
    return os.path.join(get_temporary_cache_files_directory(), f"{prefix}-{uuid.uuid4().hex}.arrow")


class _Encoder:
    """`map`'s function: a batch of texts -> their ids, as int32 arrays.

    With `num_proc`, datasets sends the function to every worker pickled by dill, whose pure-Python pickler
    takes over a second for GPT-2's tokenizer (three 50,000-entry tables), once per worker and one worker after
    another in the parent. The tokenizer is pickled with the standard (C) pickler instead, once: 0.07 s.
    """

    def __init__(self, tokenizer, text_column: str):
        self.tokenizer, self.text_column = tokenizer, text_column
        self._pickled: bytes | None = None

    def __call__(self, batch: dict) -> dict:
        # int32 arrays, not lists of Python ints (28 bytes an id): a batch of long documents stays small
        ids = self.tokenizer(batch[self.text_column], add_special_tokens=False)["input_ids"]
        return {"input_ids": [np.asarray(doc, dtype=np.int32) for doc in ids]}

    def __reduce__(self):
        if self._pickled is None:
            try:
                self._pickled = pickle.dumps(self.tokenizer, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception:  # e.g. a tokenizer holding a lambda: leave it to dill
                return _Encoder, (self.tokenizer, self.text_column)
        return _unpickle_encoder, (self._pickled, self.text_column)


def _unpickle_encoder(pickled: bytes, text_column: str) -> _Encoder:
    return _Encoder(pickle.loads(pickled), text_column)


# --- the token stream -------------------------------------------------------------------------------------
@dataclass
class TokenStream:
    """All documents' ids as one flat int32 array, documents separated by `separator` (if any).

    Always stored in a file (next to the dataset's Arrow cache, or in the temporary cache directory) and
    memory-mapped, so only the windows being gathered are ever in memory, whatever the corpus's size; it
    pickles as its path, so `num_proc` workers reopen it cheaply.
    """

    n_tokens: int
    max_id: int  # the largest id in the stream (-1 when empty)
    doc_starts: np.ndarray  # start offset of every non-empty document in the stream
    doc_lengths: np.ndarray
    path: str | None = None  # build_stream always writes one; `tokens` alone serves small in-memory streams
    tokens: np.ndarray | None = field(default=None, repr=False)

    def array(self) -> np.ndarray:
        if self.tokens is None:
            self.tokens = np.memmap(self.path, dtype=np.int32, mode="r")
        return self.tokens

    def __getstate__(self) -> dict:
        if self.path is None:
            return dict(self.__dict__)
        return {**self.__dict__, "tokens": None}  # workers memory-map the file themselves

    def window_starts(self, max_length: int, stride: int, within_documents: bool) -> np.ndarray:
        if not within_documents:
            return np.arange(0, max(self.n_tokens - max_length, 0), stride, dtype=np.int64)
        counts = np.maximum(0, -(-(self.doc_lengths - max_length) // stride))  # ceil((len - L) / stride)
        first = np.repeat(self.doc_starts, counts)
        rank = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        return first + rank * stride


def build_stream(tokens: Dataset, separator: int | None, batch_size: int = TOKENIZE_BATCH) -> TokenStream:
    """Flatten a tokenized dataset into a TokenStream: a file next to its Arrow files (reused by the next call
    on the same tokens), or in the temporary cache directory for tokens held in memory."""
    path = _temporary_file("hfgpt-stream").removesuffix(".arrow") + ".int32"
    if tokens.cache_files:
        key = hashlib.sha256(f"{tokens._fingerprint}-{separator}".encode()).hexdigest()[:16]
        path = os.path.join(os.path.dirname(tokens.cache_files[0]["filename"]), f"hfgpt-stream-{key}.int32")
        index_path = path + ".index.npz"
        if os.path.exists(path) and os.path.exists(index_path):
            with np.load(index_path) as index:
                return _stream_from_lengths(index["lengths"], int(index["max_id"]), separator, path=path)

    lengths, max_id = [], -1 if separator is None else separator
    index_path = path + ".index.npz"
    out = tempfile.NamedTemporaryFile(dir=os.path.dirname(path), delete=False)
    try:
        for batch in tokens.with_format("arrow").iter(batch_size=batch_size):
            values, doc_lengths, batch_max_id = _join_batch(batch.column("input_ids"), separator)
            max_id = max(max_id, batch_max_id)
            lengths.append(doc_lengths)
            out.write(memoryview(values))  # no bytes copy: a batch of long documents is large enough
        # write then rename: an interrupted run never leaves a truncated stream behind
        out.close()
        np.savez(index_path, lengths=np.concatenate(lengths or [np.zeros(0, np.int64)]), max_id=max_id)
        os.replace(out.name, path)
    except BaseException:
        out.close()
        Path(out.name).unlink(missing_ok=True)
        raise
    all_lengths = np.concatenate(lengths or [np.zeros(0, np.int64)])
    return _stream_from_lengths(all_lengths, max_id, separator, path=path)


def _join_batch(column, separator: int | None) -> tuple[np.ndarray, np.ndarray, int]:
    """One batch of documents (an Arrow list column of ids) as its part of the stream.

    Returns the int32 tokens, with `separator` (if any) after every non-empty document (the stream's last one
    lies beyond n_tokens, so no window reads it), the lengths of the non-empty documents, and the largest id
    (-1 if none). A pure function, so tests can check the joining at volume without building datasets.
    """
    doc_lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False)
    values = pc.list_flatten(column).to_numpy(zero_copy_only=False)
    max_id = _checked_max_id(values, MAX_TOKEN_ID)
    values = values.astype(np.int32, copy=False)
    if separator is not None:
        ends = np.cumsum(doc_lengths)[doc_lengths > 0]
        values = np.insert(values, ends, np.int32(separator))
    return values, doc_lengths[doc_lengths > 0], max_id


def _checked_max_id(values: np.ndarray, limit: int) -> int:
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


def _stream_from_lengths(lengths: np.ndarray, max_id: int, separator: int | None, **kwargs) -> TokenStream:
    lengths = lengths.astype(np.int64)
    step = lengths + (1 if separator is not None else 0)
    starts = np.cumsum(step) - step
    n_tokens = int(step.sum()) - (1 if separator is not None and len(lengths) else 0)
    return TokenStream(n_tokens=n_tokens, max_id=max_id, doc_starts=starts, doc_lengths=lengths, **kwargs)


def _gather_windows(batch: dict, stream: TokenStream, max_length: int, dtype: np.dtype) -> dict:
    starts = np.asarray(batch["start"], dtype=np.int64)
    low = int(starts[0])
    chunk = stream.array()[low : int(starts[-1]) + max_length + 1]
    windows = chunk[(starts - low)[:, None] + np.arange(max_length + 1)].astype(dtype, copy=False)
    return {"input_ids": windows[:, :-1], "shift_labels": windows[:, 1:]}


# --- the public API ---------------------------------------------------------------------------------------
def window(
    source: Any,
    tokenizer=None,
    max_length: int = 256,
    stride: int = 128,
    *,
    text_column: str = "text",
    within_documents: bool = False,
    separator_id: int | None = None,
    num_proc: int | None = None,
    batch_size: int = 1000,
) -> Dataset | IterableDataset | DatasetDict:
    r"""Sliding-window training samples of `max_length` tokens, `stride` apart.

    Args:
        source: a text or a list of texts (strings are always text); a `pathlib.Path` or a list of them (files,
            folders, globs or a saved dataset: see `hfgpt.data.sources.load_corpus`); or a `datasets.Dataset` /
            `IterableDataset` / `DatasetDict` with a `text_column` or an `input_ids` column.
        tokenizer (*optional*): any transformers tokenizer; not needed when `source` has `input_ids`.
        max_length (`int`, defaults to 256): tokens per window (the model's context length at most).
        stride (`int`, defaults to 128): distance between window starts; `stride < max_length` overlaps windows.
        text_column (`str`, defaults to `"text"`): the column holding the text.
        within_documents (`bool`, defaults to `False`): keep every window inside one document instead of
            windowing the joined stream.
        separator_id (`int`, *optional*): id placed between documents; defaults to the tokenizer's EOS
            (`<|endoftext|>`); without either, documents are joined directly.
        num_proc (`int`, *optional*): processes for tokenizing and windowing.
        batch_size (`int`, defaults to 1000): rows per `map` batch.

    Returns:
        A `Dataset` with `input_ids` and `shift_labels` columns, formatted as torch (see the module
        docstring); an `IterableDataset` for an `IterableDataset` source (streaming); a `DatasetDict` for a
        `DatasetDict`.
    """
    check_window_args(max_length, stride)
    dataset = as_dataset(source, text_column)
    options = dict(
        tokenizer=tokenizer,
        max_length=max_length,
        stride=stride,
        text_column=text_column,
        within_documents=within_documents,
        separator_id=separator_id,
        num_proc=num_proc,
        batch_size=batch_size,
    )
    if isinstance(dataset, DatasetDict):
        return DatasetDict({split: window(part, **options) for split, part in dataset.items()})
    separator = separator_id if separator_id is not None else getattr(tokenizer, "eos_token_id", None)
    tokens = _tokenize(dataset, tokenizer, text_column, num_proc, batch_size)
    # Ids a tokenizer can produce, so that every split windowed with it gets the same column type.
    vocab_size = max(len(tokenizer) if tokenizer is not None else 0, (separator or 0) + 1)
    if isinstance(tokens, IterableDataset):
        # The stream's largest id is unknown until the end: without a tokenizer, assume the widest type.
        dtype = window_dtype(vocab_size if tokenizer is not None else MAX_TOKEN_ID)
        windows = _window_stream(tokens, max_length, stride, separator, within_documents, batch_size, dtype)
        return windows.with_format("torch")

    stream = build_stream(tokens, separator)
    starts = stream.window_starts(max_length, stride, within_documents)
    if len(starts) == 0:
        where = "its longest document has" if within_documents else "it has"
        longest = (
            int(stream.doc_lengths.max()) if within_documents and len(stream.doc_lengths) else stream.n_tokens
        )
        raise DataError(
            f"the corpus is too short for one window: {where} {longest} tokens, and a window of max_length="
            f"{max_length} needs max_length + 1 = {max_length + 1} (its targets are shifted by one). "
            "Use a smaller max_length or more text (to window a file, pass a pathlib.Path, not a string)."
        )
    dtype = window_dtype(max(vocab_size, stream.max_id + 1))
    windows = Dataset.from_dict({"start": starts}).map(
        _gather_windows,
        batched=True,
        batch_size=batch_size,
        fn_kwargs={"stream": stream, "max_length": max_length, "dtype": dtype},
        remove_columns=["start"],
        features=window_features(dtype),
        num_proc=num_proc,
        cache_file_name=_windows_file(stream, max_length, stride, within_documents, dtype),
        desc=f"Windowing (max_length={max_length}, stride={stride})",
    )
    return windows.with_format("torch")


def _windows_file(
    stream: TokenStream, max_length: int, stride: int, within_documents: bool, dtype: np.dtype
) -> str:
    """Where map writes the windows: always a file next to the stream's, memory-mapped afterwards.

    The starts dataset lives in memory, so without a file map would keep every window in memory (6x the
    stream's bytes) and grow one in-memory Arrow buffer to that size, which is several times slower than
    writing a file (pyarrow's mimalloc pool reallocates huge buffers slowly). Windows of a corpus cached on
    disk are reused by the next call with the same arguments.
    """
    suffix = f"-windows-L{max_length}-s{stride}{'-doc' if within_documents else ''}-{dtype.name}.arrow"
    return stream.path.removesuffix(".int32") + suffix


class _StreamWindower:
    """Windows an unbounded token stream batch by batch, carrying the unfinished tail across batches."""

    def __init__(
        self, max_length: int, stride: int, separator: int | None, within_documents: bool, dtype: np.dtype
    ):
        self.max_length, self.stride, self.dtype = max_length, stride, dtype
        self.separator, self.within_documents = separator, within_documents
        self.reset()

    def reset(self) -> None:
        self.buffer = np.zeros(0, dtype=self.dtype)  # tokens from `offset` on
        self.offset = 0  # stream position of buffer[0]
        self.next_start = 0  # stream position of the next window start
        self.started = False

    def __call__(self, batch: dict, indices: list[int]) -> dict:
        if indices and indices[0] == 0:  # a new pass over the stream (next epoch): forget the last one's tail
            self.reset()
        windows = []
        for ids in batch["input_ids"]:
            if not len(ids):
                continue
            ids = np.asarray(ids)
            _checked_max_id(ids, np.iinfo(self.dtype).max)
            ids = ids.astype(self.dtype, copy=False)
            if self.within_documents:
                self.buffer, self.offset, self.next_start = ids, 0, 0
                windows.append(self._emit())
                continue
            if self.started and self.separator is not None:
                ids = np.concatenate((np.array([self.separator], dtype=self.dtype), ids))
            self.started = True
            self.buffer = np.concatenate((self.buffer, ids))
            windows.append(self._emit())
            # drop tokens no future window needs (the next start may lie beyond the buffer when stride > L)
            keep_from = min(self.next_start - self.offset, len(self.buffer))
            self.buffer, self.offset = self.buffer[keep_from:], self.offset + keep_from
        stacked = np.concatenate(windows) if windows else np.zeros((0, self.max_length + 1), dtype=self.dtype)
        return {"input_ids": stacked[:, :-1], "shift_labels": stacked[:, 1:]}

    def _emit(self) -> np.ndarray:
        end = self.offset + len(self.buffer)  # a window at s needs token s + max_length, i.e. s + L < end
        last = end - self.max_length - 1
        if last < self.next_start:
            return np.zeros((0, self.max_length + 1), dtype=self.dtype)
        starts = np.arange(self.next_start, last + 1, self.stride) - self.offset
        self.next_start = int(starts[-1]) + self.offset + self.stride
        return self.buffer[starts[:, None] + np.arange(self.max_length + 1)]


def _window_stream(
    tokens: IterableDataset, max_length, stride, separator, within_documents, batch_size, dtype: np.dtype
):
    windower = _StreamWindower(max_length, stride, separator, within_documents, dtype)
    return tokens.map(
        windower,
        batched=True,
        with_indices=True,
        batch_size=batch_size,
        remove_columns=["input_ids"],
        features=window_features(dtype),
    )


__all__ = ["TokenStream", "build_stream", "check_window_args", "window", "window_dtype"]
