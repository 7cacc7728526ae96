"""Plots: matplotlib without a display, and the loss curve every training run draws."""

from __future__ import annotations

from pathlib import Path


def pyplot():
    """matplotlib's pyplot on the Agg backend (files only, no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_loss_curve(history: list[dict], path: str | Path, title: str = "hfgpt training") -> Path:
    """Plot `history` records (`tokens_seen` plus `loss` and/or `eval_loss`) to `path`; returns the path."""
    plt = pyplot()
    train = [(r["tokens_seen"], r["loss"]) for r in history if "loss" in r]
    val = [(r["tokens_seen"], r["eval_loss"]) for r in history if "eval_loss" in r]
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    if train:
        ax.plot(*zip(*train), label="training loss")
    if val:
        ax.plot(*zip(*val), linestyle="-.", marker="o", markersize=3, label="validation loss")
    ax.set_xlabel("tokens seen")
    ax.set_ylabel("cross-entropy loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


__all__ = ["plot_loss_curve", "pyplot"]
