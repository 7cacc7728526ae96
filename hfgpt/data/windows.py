"""Sliding-window training samples: text -> token ids -> fixed-length windows, built with `datasets.map`.

The classic `GPTDatasetV1` semantics, made scalable: the documents become one file-backed token stream
(`hfgpt.data.stream`: tokenized with `datasets.map`, joined with the tokenizer's EOS) and the windows are
views of it, gathered by a batched `datasets.map` over their starts 0, stride, 2*stride, ... (the whole
windows: the stream's rule for training).

Each sample has two columns, the book's pair (input, target) = (tokens[s:s+L], tokens[s+1:s+L+1]):

* ``input_ids``    = tokens[s : s+L]       — the book's *input*
* ``shift_labels`` = tokens[s+1 : s+L+1]   — the book's *target*, already shifted by one

transformers' causal-LM loss takes ``shift_labels`` as the targets, so a model trained on these columns
(plain loop or `Trainer`) optimises exactly the book's loss: all L targets of every window.

The columns are stored in the smallest integer type that holds the vocabulary: uint16 up to 65,536 ids
(GPT-2's 50,257), int32 beyond (Megatron-LM's and nanoGPT's choice), a quarter of int64's bytes to write
and read back. The returned dataset is formatted as torch, which widens them to `torch.long` as rows are
read: that is the one place stored ids become model inputs. A streamed (`IterableDataset`) source is
windowed lazily, batch by batch, by the same rule.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from datasets import Dataset, DatasetDict, Features, IterableDataset, Sequence, Value

from hfgpt.data.sources import as_dataset
from hfgpt.data.stream import MAX_TOKEN_ID, TokenStream, checked_max_id, stream_of_tokens, tokenize
from hfgpt.errors import ConfigError, DataError

WINDOW_COLUMNS = ("input_ids", "shift_labels")


def window_dtype(vocab_size: int) -> np.dtype:
    """The smallest integer type that holds ids 0 .. vocab_size - 1: uint16, else int32."""
    return np.dtype(np.uint16) if vocab_size <= 2**16 else np.dtype(np.int32)


def window_features(dtype: np.dtype) -> Features:
    return Features({name: Sequence(Value(np.dtype(dtype).name)) for name in WINDOW_COLUMNS})


def check_window_args(max_length: Any, stride: Any) -> None:
    for name, value in (("max_length", max_length), ("stride", stride)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value <= 0:
            raise ConfigError(f"{name} must be a positive integer, got {name}={value!r}")


def _gather_windows(batch: dict, stream: TokenStream, max_length: int, dtype: np.dtype) -> dict:
    windows = stream.gather(batch["start"], max_length).astype(dtype, copy=False)
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
    tokens = tokenize(dataset, tokenizer, text_column, num_proc, batch_size)
    # Ids a tokenizer can produce, so that every split windowed with it gets the same column type.
    vocab_size = max(len(tokenizer) if tokenizer is not None else 0, (separator or 0) + 1)
    if isinstance(tokens, IterableDataset):
        # The stream's largest id is unknown until the end: without a tokenizer, assume the widest type.
        dtype = window_dtype(vocab_size if tokenizer is not None else MAX_TOKEN_ID)
        windows = _window_stream(tokens, max_length, stride, separator, within_documents, batch_size, dtype)
        return windows.with_format("torch")

    stream = stream_of_tokens(tokens, separator)
    starts = stream.window_starts(max_length, stride, within_documents)
    if len(starts) == 0:
        where = "its longest document has" if within_documents else "it has"
        longest = (
            int(stream.doc_lengths.max()) if within_documents and len(stream.doc_lengths) else stream.n_tokens
        )
        raise DataError(
            f"the corpus is too short for one window: {where} {longest} tokens, and a window of max_length="
            f"{max_length} needs max_length + 1 = {max_length + 1} (its targets are shifted by one). "
            "Use a smaller max_length (--max-length) or more text (from Python, pass a file as a pathlib.Path: "
            "a string is windowed as text)."
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
    return stream.index_path + suffix


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
            checked_max_id(ids, np.iinfo(self.dtype).max)
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


__all__ = ["check_window_args", "window", "window_dtype"]
