"""The book's `create_dataloader_v1`: a torch DataLoader of `(input, target)` batches, built on `window()`."""

from __future__ import annotations

from typing import Any

from hfgpt.data.windows import window


class WindowPairs:
    """A map-style torch dataset of the book's `(input, target)` tensor pairs over windowed samples."""

    def __init__(self, windows):
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
    """The classic `create_dataloader_v1`: batches of `(inputs, targets)` `torch.long` tensors, GPT-2 BPE by default.

    `text` is anything `window()` takes: a text, a list of texts, a `pathlib.Path` or a dataset.
    """
    import torch

    if tokenizer is None:
        from hfgpt.tokenization.bpe import GPT2BPETokenizer

        tokenizer = GPT2BPETokenizer()
    windows = window(text, tokenizer, max_length=max_length, stride=stride)
    return torch.utils.data.DataLoader(
        WindowPairs(windows),
        batch_size=batch_size,
        shuffle=shuffle,
        drop_last=drop_last,
        num_workers=num_workers,
    )


__all__ = ["WindowPairs", "create_dataloader"]
