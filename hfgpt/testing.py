"""Checks for plugin authors: call them from a plugin's tests to see that its strategy works through hfgpt.

    from hfgpt.testing import assert_registered

    def test_registered():
        assert_registered("position_encoding", "alibi", "hfgpt-alibi", ALiBiPositionEncoding)

They raise `AssertionError` with what differs, as pytest's own assertions do.
"""

from __future__ import annotations

from collections.abc import Callable

from hfgpt.plugins import get_strategy, list_plugins


def assert_registered(kind: str, name: str, distribution: str, cls: type) -> None:
    """The installed distribution `distribution` loads through its `hfgpt` entry point, `hfgpt plugins`
    lists it with `name` among its `kind` strategies (`position_encoding`, `tokenizer`), and `name`
    resolves to `cls`."""
    entries = [entry for entry in list_plugins() if entry["distribution"] == distribution]
    assert entries, (
        f"`hfgpt plugins` lists no plugin from the distribution {distribution!r}: is it installed?"
    )
    for entry in entries:
        assert entry["status"] == "ok", (
            f"{distribution}'s plugin {entry['name']!r} failed: {entry.get('error')}"
        )
    registered = {kind_: names for entry in entries for kind_, names in entry["registered"].items()}
    assert name in registered.get(kind, []), f"{distribution} registers {registered}, not {kind} {name!r}"
    resolved = get_strategy(kind, name)
    assert resolved is cls, f"{kind} {name!r} resolves to {resolved!r}, not {cls!r}"


def train_steps(
    model, ids, steps: int, learning_rate: float = 3e-3, after_backward: Callable[[], None] | None = None
) -> list[float]:
    """Train `model` (a causal LM) on the batch `ids` for `steps` AdamW steps; its loss at every step.

    A periodic sequence (e.g. `torch.arange(40).remainder(7)[None].repeat(4, 1)`) is easy: a strategy through
    which the model learns halves its first loss within a few dozen steps. `after_backward` runs between
    the backward pass and the optimizer step, where gradients can be checked.
    """
    import torch

    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate)
    losses = []
    for _ in range(steps):
        loss = model(ids, labels=ids).loss
        optimizer.zero_grad()
        loss.backward()
        if after_backward is not None:
            after_backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


__all__ = ["assert_registered", "train_steps"]
