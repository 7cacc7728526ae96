"""Sliding-window training samples: text -> token ids -> fixed-length windows, built with `datasets.map`.

The classic `GPTDatasetV1` semantics, made scalable:

1. Documents are tokenized with a batched `datasets.map` (cached, `num_proc`-parallel, progress bars).
2. Their ids are joined into one token stream, documents separated by the tokenizer's EOS
   (`<|endoftext|>`), and written once to a flat int32 file next to the Arrow cache (memory-mapped; a
   small corpus stays in memory).
3. A batched `datasets.map` over the window starts 0, stride, 2*stride, ... (while start + max_length <
   number of tokens) gathers every window with numpy fancy indexing.

Each sample has three columns of the smallest integer type that holds the vocabulary: uint16 up to 65,536
ids (GPT-2's 50,257), int32 beyond (Megatron-LM's and nanoGPT's choice). Windowing writes 6x the stream's
tokens, so this is a quarter of int64's bytes to write and to read back; datasets' torch and numpy formats
and transformers' collators still hand them out as int64 (`torch.long`).

For the book's pair (input, target) = (tokens[s:s+L], tokens[s+1:s+L+1]):

* ``input_ids``    = tokens[s : s+L]       — the book's *input*
* ``shift_labels`` = tokens[s+1 : s+L+1]   — the book's *target*, already shifted by one
* ``labels``       = tokens[s : s+L]       — transformers' convention (aligned with input_ids)

transformers' causal-LM loss uses ``shift_labels`` when present, so a model trained on these columns
(plain loop or `Trainer`, whose default collator passes all three) optimises exactly the book's loss:
all L targets of every window, including the last one that ``labels`` alone would drop.
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc
from datasets import Dataset, DatasetDict, Features, IterableDataset, Sequence, Value, load_dataset
from datasets.fingerprint import get_temporary_cache_files_directory

from hfgpt.corpus import check_text_file

WINDOW_COLUMNS = ("input_ids", "labels", "shift_labels")
MAX_TOKEN_ID = int(np.iinfo(np.int32).max)


def window_dtype(vocab_size: int) -> np.dtype:
    """The smallest integer type that holds ids 0 .. vocab_size - 1: uint16, else int32."""
    return np.dtype(np.uint16) if vocab_size <= 2**16 else np.dtype(np.int32)


def window_features(dtype: np.dtype) -> Features:
    return Features({name: Sequence(Value(np.dtype(dtype).name)) for name in WINDOW_COLUMNS})


def check_window_args(max_length: Any, stride: Any) -> None:
    for name, value in (("max_length", max_length), ("stride", stride)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {name}={value!r}")


# --- sources ----------------------------------------------------------------------------------------------
def _looks_like_paths(source: str) -> bool:
    if os.path.exists(source):
        return True
    # Only a short one-line string can be a glob; globbing a text full of "[" and "*" (code) is slow and
    # can even recurse without end inside glob.
    one_line = len(source) <= 1024 and "\n" not in source
    return one_line and glob.has_magic(source) and bool(glob.glob(source, recursive=True))


def _meant_as_path(source: str) -> bool:
    """One word with a slash, glob characters or a file suffix (`corpus.txt`): a path, not a training text."""
    return (
        len(source) <= 1024  # longer whitespace-free strings (base64, minified code) stay texts
        and not any(c.isspace() for c in source)
        and (
            "/" in source
            or os.sep in source
            or glob.has_magic(source)
            or bool(re.search(r"\.\w{1,8}$", source))
        )
    )


def _as_dataset(
    source: Any, text_column: str, cache_dir: str | None
) -> Dataset | IterableDataset | DatasetDict:
    """Turn a string, texts, paths/globs or a datasets object into a datasets object.

    A string (or list of strings) names files when it is an existing path or a matching glob, and is
    text otherwise; a list mixing both is an error rather than a guess.
    """
    if isinstance(source, (Dataset, IterableDataset, DatasetDict)):
        return source
    items = [source] if isinstance(source, (str, os.PathLike)) else source
    if (
        not isinstance(items, (list, tuple))
        or not items
        or not all(isinstance(s, (str, os.PathLike)) for s in items)
    ):
        raise TypeError(
            f"cannot window a {type(source).__name__}: pass a string, a list of strings, file paths or globs, "
            "or a datasets Dataset/IterableDataset/DatasetDict with a text or input_ids column"
        )
    is_path = [isinstance(s, os.PathLike) or _looks_like_paths(s) for s in items]
    if not any(is_path):
        missing = [str(s) for s in items if _meant_as_path(s)]
        if missing:  # a mistyped path must not be windowed as the text "data/corpus.txt"
            raise FileNotFoundError(
                f"no file matches {missing[0][:200]!r} (relative to {os.getcwd()}): check the path or the glob "
                "pattern; to window such a string as text, pass Dataset.from_dict({'text': [...]})"
            )
        return Dataset.from_dict({text_column: list(items)})
    if not all(is_path):
        missing = [str(s)[:80] for s, p in zip(items, is_path) if not p]
        raise FileNotFoundError(
            f"some sources are files and some are not: {missing[:3]} match no file. Pass only file paths/globs "
            "(check the paths) or only texts"
        )
    from hfgpt.corpus import expand_paths

    files = [str(path) for path in expand_paths(items)]
    for path in files:
        check_text_file(path)
    return load_dataset("text", data_files=files, sample_by="document", split="train", cache_dir=cache_dir)


def _tokenize(dataset, tokenizer, text_column: str, num_proc: int | None, batch_size: int):
    columns = dataset.column_names or []
    if "input_ids" in columns:
        return dataset.select_columns(["input_ids"])
    if text_column not in columns:
        raise ValueError(
            f"the dataset has no {text_column!r} column (columns: {', '.join(columns) or 'none'}): pass "
            "text_column=<the column holding the text>, or a dataset with an input_ids column"
        )
    if tokenizer is None:
        raise ValueError("this source holds text: pass a tokenizer (e.g. hfgpt.GPT2BPETokenizer())")

    kwargs = {"num_proc": num_proc, "desc": "Tokenizing"} if isinstance(dataset, Dataset) else {}
    return dataset.map(
        _encode_batch,
        batched=True,
        batch_size=batch_size,
        fn_kwargs={"tokenizer": tokenizer, "text_column": text_column},
        remove_columns=columns,
        **kwargs,
    )


def _encode_batch(batch: dict, tokenizer, text_column: str) -> dict:
    return {"input_ids": tokenizer(batch[text_column], add_special_tokens=False)["input_ids"]}


# --- the token stream -------------------------------------------------------------------------------------
@dataclass
class TokenStream:
    """All documents' ids as one flat int32 array, documents separated by `separator` (if any).

    Stored in a file next to the dataset's Arrow cache and memory-mapped, so only the windows being
    gathered are ever in memory; it pickles as its path, so `num_proc` workers reopen it cheaply.
    """

    n_tokens: int
    max_id: int  # the largest id in the stream (-1 when empty)
    doc_starts: np.ndarray  # start offset of every non-empty document in the stream
    doc_lengths: np.ndarray
    path: str | None = None
    tokens: np.ndarray | None = field(default=None, repr=False)

    def array(self) -> np.ndarray:
        if self.tokens is None:
            self.tokens = np.memmap(self.path, dtype=np.int32, mode="r")
        return self.tokens

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        if self.path is not None:
            state["tokens"] = None  # workers memory-map the file themselves
        return state

    def window_starts(self, max_length: int, stride: int, within_documents: bool) -> np.ndarray:
        if not within_documents:
            return np.arange(0, max(self.n_tokens - max_length, 0), stride, dtype=np.int64)
        counts = np.maximum(0, -(-(self.doc_lengths - max_length) // stride))  # ceil((len - L) / stride)
        first = np.repeat(self.doc_starts, counts)
        rank = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        return first + rank * stride


def build_stream(tokens: Dataset, separator: int | None, batch_size: int = 1_000) -> TokenStream:
    """Flatten a tokenized dataset into a TokenStream (cached next to its Arrow files when it has some)."""
    path = None
    if tokens.cache_files:
        key = hashlib.sha256(f"{tokens._fingerprint}-{separator}".encode()).hexdigest()[:16]
        path = os.path.join(os.path.dirname(tokens.cache_files[0]["filename"]), f"hfgpt-stream-{key}.int32")
        index_path = path + ".index.npz"
        if os.path.exists(path) and os.path.exists(index_path):
            with np.load(index_path) as index:
                return _stream_from_lengths(index["lengths"], int(index["max_id"]), separator, path=path)

    pieces, lengths, max_id = [], [], -1 if separator is None else separator
    out = tempfile.NamedTemporaryFile(dir=os.path.dirname(path), delete=False) if path else None
    try:
        for batch in tokens.with_format("arrow").iter(batch_size=batch_size):
            column = batch.column("input_ids")
            doc_lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False)
            values = pc.list_flatten(column).to_numpy(zero_copy_only=False)
            max_id = max(max_id, _checked_max_id(values, MAX_TOKEN_ID))
            values = values.astype(np.int32, copy=False)
            if separator is not None:  # a separator after every non-empty document; the last one is cut below
                ends = np.cumsum(doc_lengths)[doc_lengths > 0]
                values = np.insert(values, ends, np.int32(separator))
            lengths.append(doc_lengths[doc_lengths > 0])
            if out is not None:
                out.write(memoryview(values))  # no bytes copy: a batch of long documents is large enough
            else:
                pieces.append(values)
        if out is not None:  # write then rename: an interrupted run never leaves a truncated stream behind
            out.close()
            np.savez(index_path, lengths=np.concatenate(lengths or [np.zeros(0, np.int64)]), max_id=max_id)
            os.replace(out.name, path)
    except BaseException:
        if out is not None:
            out.close()
            Path(out.name).unlink(missing_ok=True)
        raise
    all_lengths = np.concatenate(lengths or [np.zeros(0, np.int64)])
    tokens_array = np.concatenate(pieces) if pieces else None
    return _stream_from_lengths(all_lengths, max_id, separator, path=path, tokens=tokens_array)


def _checked_max_id(values: np.ndarray, limit: int) -> int:
    """The largest token id in `values` (-1 if empty), refusing ids outside [0, limit] (the storage type's)."""
    if not len(values):
        return -1
    low, high = int(values.min()), int(values.max())
    if low < 0 or high > limit:
        raise ValueError(
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
    return {"input_ids": windows[:, :-1], "labels": windows[:, :-1], "shift_labels": windows[:, 1:]}


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
    cache_dir: str | None = None,
) -> Dataset | IterableDataset | DatasetDict:
    r"""Sliding-window training samples of `max_length` tokens, `stride` apart.

    Args:
        source: a text string or a list of texts; file paths, folders or globs (one document per file); or a
            `datasets.Dataset` / `IterableDataset` / `DatasetDict` with a `text_column` or an `input_ids` column.
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
        cache_dir (`str`, *optional*): where `datasets` caches files loaded from disk.

    Returns:
        A `Dataset` with `input_ids`, `labels` and `shift_labels` columns (see the module docstring); an
        `IterableDataset` for an `IterableDataset` source (streaming); a `DatasetDict` for a `DatasetDict`.
    """
    check_window_args(max_length, stride)
    dataset = _as_dataset(source, text_column, cache_dir)
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
        return _window_stream(tokens, max_length, stride, separator, within_documents, batch_size, dtype)

    stream = build_stream(tokens, separator)
    starts = stream.window_starts(max_length, stride, within_documents)
    if len(starts) == 0:
        where = "its longest document has" if within_documents else "it has"
        longest = (
            int(stream.doc_lengths.max()) if within_documents and len(stream.doc_lengths) else stream.n_tokens
        )
        raise ValueError(
            f"the corpus is too short for one window: {where} {longest} tokens, and a window of max_length="
            f"{max_length} needs max_length + 1 = {max_length + 1} (its targets are shifted by one). "
            "Use a smaller max_length or more text."
        )
    dtype = window_dtype(max(vocab_size, stream.max_id + 1))
    return Dataset.from_dict({"start": starts}).map(
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


def _windows_file(
    stream: TokenStream, max_length: int, stride: int, within_documents: bool, dtype: np.dtype
) -> str:
    """Where map writes the windows: always a file, memory-mapped afterwards.

    The starts dataset lives in memory, so without a file map would keep every window in memory (6x the
    stream's bytes) and grow one in-memory Arrow buffer to that size, which is several times slower than
    writing a file (pyarrow's mimalloc pool reallocates huge buffers slowly). A corpus cached on disk gets
    its windows next to its stream (reused by the next call); an in-memory one gets a file in datasets'
    temporary cache directory, deleted when the Python session ends.
    """
    if stream.path is None:
        return os.path.join(get_temporary_cache_files_directory(), f"hfgpt-windows-{uuid.uuid4().hex}.arrow")
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
        return {"input_ids": stacked[:, :-1], "labels": stacked[:, :-1], "shift_labels": stacked[:, 1:]}

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


# --- the classic DataLoader -------------------------------------------------------------------------------
class WindowPairs:
    """A map-style torch dataset of the book's `(input, target)` tensor pairs over windowed samples."""

    def __init__(self, windows: Dataset):
        self.windows = windows.with_format("torch", columns=["input_ids", "shift_labels"])

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: int):
        row = self.windows[index]
        return row["input_ids"], row["shift_labels"]


def create_dataloader(
    text: Any,
    batch_size: int = 4,
    max_length: int = 256,
    stride: int = 128,
    shuffle: bool = True,
    drop_last: bool = True,
    num_workers: int = 0,
    tokenizer=None,
):
    """The classic `create_dataloader_v1`: batches of `(inputs, targets)` `torch.long` tensors, GPT-2 BPE by default."""
    import torch

    if tokenizer is None:
        from hfgpt.tokenization_hfgpt_bpe import GPT2BPETokenizer

        tokenizer = GPT2BPETokenizer()
    windows = window(text, tokenizer, max_length=max_length, stride=stride)
    return torch.utils.data.DataLoader(
        WindowPairs(windows),
        batch_size=batch_size,
        shuffle=shuffle,
        drop_last=drop_last,
        num_workers=num_workers,
    )


__all__ = ["TokenStream", "WindowPairs", "build_stream", "create_dataloader", "window"]
