"""Evaluation written out as plain loops: the references `hfgpt.evaluation` and `hfgpt compare` are checked
against (one window at a time, the perplexity guide's loop)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def stream(tokenizer, texts: list[str]) -> torch.Tensor:
    ids: list[int] = []
    for text in texts:
        if ids:
            ids.append(tokenizer.eos_token_id)
        ids += tokenizer(text, add_special_tokens=False)["input_ids"]
    return torch.tensor(ids)


@torch.no_grad()
def non_overlapping_nats(model, ids: torch.Tensor, length: int) -> tuple[float, int]:
    """Windows ids[b : b + length] predicting ids[b + 1 : b + length + 1], one at a time, b = 0, length, ..."""
    nats, count = 0.0, 0
    for begin in range(0, len(ids) - 1, length):
        targets = ids[begin + 1 : begin + length + 1]
        inputs = ids[begin : begin + len(targets)]
        logits = model(inputs[None]).logits[0]
        nats += F.cross_entropy(logits, targets, reduction="sum").item()
        count += len(targets)
    return nats, count


@torch.no_grad()
def perplexity_guide_nats(model, ids: torch.Tensor, length: int, stride: int) -> tuple[float, int]:
    """transformers' perplexity-guide loop with max_length = length + 1: the window's last token is only a
    target, so the model sees `length` tokens; the guide's internal label shift is written out."""
    encodings, max_length, seq_len = ids[None], length + 1, len(ids)
    nats, count, prev_end = 0.0, 0, 0
    for begin in range(0, seq_len, stride):
        end = min(begin + max_length, seq_len)
        trg_len = end - prev_end
        input_ids = encodings[:, begin:end]
        target_ids = input_ids.clone()
        target_ids[:, :-trg_len] = -100
        logits = model(input_ids[:, :-1]).logits
        shifted = target_ids[:, 1:]
        nats += F.cross_entropy(logits[0], shifted[0], ignore_index=-100, reduction="sum").item()
        count += int((shifted != -100).sum())
        prev_end = end
        if end == seq_len:
            break
    return nats, count
