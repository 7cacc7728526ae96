"""The held-out split, once, for pretraining, the comparison and fine-tuning.

Whole documents (rows) are held out, chosen in a seeded random order, until their share of the corpus's size
reaches `share` without passing it; size is counted in tokens where the tokenizer is known before the split
(GPT-2's fixed vocabulary, a saved model's tokenizer), in UTF-8 bytes where the tokenizer is learned from the
training split itself, and in rows for fine-tuning examples. When the chosen documents are smaller than one
evaluation window (`min_size`: a corpus of one story, or one large document among small ones), the tail of
the largest remaining document is held out too, enough to reach the share and at least that window; the rest
of that document trains. What was held out is reported (`Split.describe`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyarrow.compute as pc

from hfgpt.errors import DataError


@dataclass(frozen=True)
class Split:
    """Which rows train and which are held out.

    Attributes:
        train: the rows (indices) that train whole.
        held_out: the rows held out whole.
        cut: `(row, size)` of the document whose tail is held out too: its last `size` (in `unit`) are held out,
            the rest trains; None when whole documents were enough.
        held_size / total_size: the held-out size and the corpus's, in `unit` ("tokens", "bytes" or "rows").
    """

    train: np.ndarray
    held_out: np.ndarray
    cut: tuple[int, int] | None
    held_size: int
    total_size: int
    unit: str

    def describe(self) -> str:
        """One line for the run's report: e.g. "held out 14 of 140 documents, 9.8% of the tokens"."""
        rows = len(self.train) + len(self.held_out) + (self.cut is not None)
        parts = [f"{len(self.held_out)} of {rows} {'rows' if self.unit == 'rows' else 'documents'}"]
        if self.cut is not None:
            parts.append(f"the last {self.cut[1]:,} {self.unit} of document {self.cut[0]}")
        share = self.held_size / self.total_size if self.total_size else 0.0
        return f"held out {' and '.join(parts)}: {self.held_size:,} {self.unit}, {share:.1%} of the corpus"


def choose(
    sizes: np.ndarray, share: float, seed: int, min_size: int = 1, unit: str = "tokens", cut: bool = True
) -> Split:
    """The split of documents of `sizes` (see the module docstring). With `cut=False` (examples, which cannot be
    divided) rows are held out whole until `min_size` is reached instead."""
    sizes = np.asarray(sizes, dtype=np.int64)
    if not 0 < share < 1:
        raise DataError(f"the held-out share must be between 0 and 1, got {share}")
    total = int(sizes.sum())
    if not len(sizes) or total == 0:
        raise DataError("the corpus is empty: pass files that contain text")
    target = share * total
    order = np.random.default_rng(seed).permutation(len(sizes))
    held, taken = 0, np.zeros(len(sizes), dtype=bool)
    for row in order:
        if held + sizes[row] <= target and sizes[row] > 0:
            taken[row], held = True, held + int(sizes[row])
    tail = None
    if held < min_size and not cut:  # examples: more whole rows, in the same order
        for row in order[~taken[order]]:
            if held >= min_size:
                break
            taken[row], held = True, held + int(sizes[row])
    if (
        held < max(min_size, 1) and cut
    ):  # too little for one window: add the tail of the largest other document
        row = int(np.argmax(np.where(taken, -1, sizes)))
        needed = max(min_size - held, math.ceil(target) - held, 1)
        if needed >= sizes[row]:
            raise DataError(
                f"the corpus is too short to hold out {needed:,} {unit} for validation (one evaluation window "
                f"needs {min_size:,}) and keep text to train on: its largest document has {int(sizes[row]):,}. "
                "Pass more text, or shorter windows (--max-length)"
            )
        tail, held = (row, int(needed)), held + int(needed)
    if taken.all():
        raise DataError(f"the corpus has {len(sizes)} row(s): too few to hold some out and train on the rest")
    train = np.flatnonzero(~taken & (np.arange(len(sizes)) != (tail[0] if tail else -1)))
    return Split(train, np.flatnonzero(taken), tail, held, total, unit)


def row_sizes(dataset, column: str, unit: str) -> np.ndarray:
    """Per-row sizes of a dataset: tokens of an `input_ids` column, UTF-8 bytes of a text column."""
    sizes = []
    for batch in dataset.select_columns([column]).with_format("arrow").iter(batch_size=10_000):
        values = batch[column]
        sizes.append(pc.list_value_length(values) if unit == "tokens" else pc.binary_length(values))
    arrays = [s.fill_null(0).to_numpy(zero_copy_only=False) for s in sizes]
    return np.concatenate(arrays).astype(np.int64) if arrays else np.zeros(0, dtype=np.int64)


def apply(split: Split, dataset, column: str):
    """`(train, held_out)` datasets of `dataset`'s `column` by `split`.

    The cut document is divided at its last `size` tokens (an `input_ids` column) or, for text, at the character
    that leaves about that share of its bytes to the tail; the two pieces join their sides as one row each.
    """
    from datasets import Dataset, concatenate_datasets

    dataset = dataset.select_columns([column])
    train, held = dataset.select(split.train), dataset.select(split.held_out)
    if split.cut is None:
        return train, held
    row, size = split.cut
    value = dataset[row][column]
    if isinstance(value, str):
        keep = len(value) - max(1, round(len(value) * size / max(len(value.encode("utf-8")), 1)))
    else:
        keep = len(value) - size
    head = Dataset.from_dict({column: [value[:keep]]}, features=dataset.features)
    tail = Dataset.from_dict({column: [value[keep:]]}, features=dataset.features)
    return concatenate_datasets([train, head]), concatenate_datasets([held, tail])


__all__ = ["Split", "apply", "choose", "row_sizes"]
