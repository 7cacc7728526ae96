"""The core of window() at volume: the pure functions under its two datasets.map calls, against the plain-loop
reference of tests/data/test_windows.py.

window() itself (datasets.map, Arrow files) costs milliseconds per call, so its own property tests stay at a
small count in test_windows.py; here the same semantics are checked at 10,000 examples in the volume pass:

* the in-memory path: documents split into random Arrow batches, joined by `_join_batch` (what the stream
  does per batch), windowed at `TokenStream.window_starts`, gathered by `_gather_windows` over random batches
  of starts (what map hands it);
* the streaming path: `_StreamWindower` fed batches of random sizes, twice (a second epoch).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hfgpt.data.stream import MAX_TOKEN_ID, TokenStream, _join_batch
from hfgpt.data.windows import _gather_windows, _StreamWindower, window_dtype
from tests.helpers.windows import reference_windows

# Small ids repeat, so a misplaced token shows; scaled by `id_scales` they reach int32's top (int32 columns).
# Ids are drawn as plain small integers: generating the inputs dominates the cost of an example.
documents = st.lists(st.lists(st.integers(0, 999), max_size=40), min_size=1, max_size=6)
id_scales = st.sampled_from([1, MAX_TOKEN_ID // 999])
lengths = st.integers(1, 20)
strides = st.integers(1, 25)
separators = st.sampled_from([None, 0, 1000, MAX_TOKEN_ID])
batch_sizes = st.lists(st.integers(1, 6), min_size=1, max_size=6)


def in_batches(items: list, sizes: list[int]) -> list[list]:
    """`items` cut into consecutive batches of the given sizes (used in turn), as a batched map hands them over."""
    batches, i = [], 0
    while i < len(items):
        size = sizes[len(batches) % len(sizes)]
        batches.append(items[i : i + size])
        i += size
    return batches


def all_ids(docs: list[list[int]]) -> list[int]:
    return [t for doc in docs for t in doc]


def as_pairs(columns: dict) -> list[tuple[list[int], list[int]]]:
    return list(zip(columns["input_ids"].tolist(), columns["shift_labels"].tolist()))


@pytest.mark.usefixtures("profile_pass")
@settings()  # max_examples from the profile: 100 by default, 10,000 in the volume pass
@given(
    docs=documents,
    scale=id_scales,
    max_length=lengths,
    stride=strides,
    within=st.booleans(),
    sep=separators,
    doc_batches=batch_sizes,
    start_batches=batch_sizes,
)
def test_joined_stream_starts_and_gather_match_reference(
    docs, scale, max_length, stride, within, sep, doc_batches, start_batches
):
    docs = [[t * scale for t in doc] for doc in docs]
    tokens, doc_lengths, max_id = [], [], -1 if sep is None else sep
    for batch in in_batches(docs, doc_batches):
        values, batch_lengths, batch_max_id = _join_batch(pa.array(batch, pa.list_(pa.int64())), sep)
        tokens.append(values)
        doc_lengths.append(batch_lengths)
        max_id = max(max_id, batch_max_id)
    stream = TokenStream.from_arrays(np.concatenate(tokens), np.concatenate(doc_lengths), sep, max_id)
    assert stream.max_id == max(all_ids(docs) + ([] if sep is None else [sep]), default=-1)

    starts = stream.window_starts(max_length, stride, within)
    dtype = window_dtype(stream.max_id + 1)
    pairs = []
    for batch in in_batches(starts.tolist(), start_batches):
        pairs += as_pairs(_gather_windows({"start": batch}, stream, max_length, dtype))
    assert pairs == reference_windows(docs, max_length, stride, sep, within)


@pytest.mark.usefixtures("profile_pass")
@settings()  # max_examples from the profile: 100 by default, 10,000 in the volume pass
@given(
    docs=documents,
    scale=id_scales,
    max_length=lengths,
    stride=strides,
    within=st.booleans(),
    sep=separators,
    sizes=batch_sizes,
)
def test_stream_windower_matches_reference(docs, scale, max_length, stride, within, sep, sizes):
    docs = [[t * scale for t in doc] for doc in docs]
    # The narrowest type that holds the ids, as window() picks from the tokenizer: uint16 or int32 columns.
    dtype = window_dtype(max(all_ids(docs) + [sep or 0]) + 1)
    windower = _StreamWindower(max_length, stride, sep, within, dtype)
    expected = reference_windows(docs, max_length, stride, sep, within)
    for _epoch in range(2):  # the second pass starts at index 0 again: the windower must forget the first
        pairs, index = [], 0
        for batch in in_batches(docs, sizes):
            pairs += as_pairs(windower({"input_ids": batch}, list(range(index, index + len(batch)))))
            index += len(batch)
        assert pairs == expected
