"""The comparison's files: results.csv, extrapolation.png, training_curves.png, attention.png and report.md."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from hfgpt.attention_maps import attention_weights, plot_attention
from hfgpt.compare.arguments import Comparison
from hfgpt.compare.runs import Row, StrategyRun
from hfgpt.plots import pyplot

# Press, Smith & Lewis, "Train Short, Test Long" (ICLR 2022), appendix Table 2: WikiText-103, 247M parameters,
# trained at L = 512, non-overlapping evaluation; perplexity at 512, 1012, 2512 and 4512 tokens.
PAPER_LENGTHS = (512, 1012, 2512, 4512)
PAPER_PERPLEXITY = {
    "sinusoidal": ("sinusoidal", (20.05, 43.54, 132.41, 209.37)),
    "rotary": ("rope", (20.07, 21.37, 31.58, 39.15)),
    "T5 bias": ("t5", (19.65, 18.79, 20.41, 25.91)),
    "ALiBi": ("alibi", (19.73, 18.73, 18.41, 18.41)),
}


def write_csv(rows: list[Row], path: Path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["strategy", "eval_length", "protocol", "loss", "perplexity"])
        for row in rows:
            writer.writerow(
                [row.strategy, row.eval_length, row.protocol, f"{row.loss:.6f}", f"{row.perplexity:.4f}"]
            )


def plot_extrapolation(rows: list[Row], protocols: list[str], train_length: int, path: Path) -> Path:
    """Perplexity against evaluation length (log-log), one line per strategy, one panel per protocol."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(protocols), figsize=(5.2 * len(protocols), 4.0), dpi=110, squeeze=False)
    strategies = list(dict.fromkeys(row.strategy for row in rows))
    for ax, protocol in zip(axes[0], protocols):
        for strategy in strategies:
            points = sorted(
                (r.eval_length, r.perplexity)
                for r in rows
                if r.strategy == strategy and r.protocol == protocol
            )
            if points:
                ax.plot(*zip(*points), marker="o", markersize=4, label=strategy)
        ax.axvline(
            train_length, color="grey", linestyle="--", linewidth=1, label=f"training length {train_length}"
        )
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("evaluation length (tokens)")
        ax.set_ylabel("perplexity")
        ax.set_title(f"{protocol} windows")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_training_curves(runs: list[StrategyRun], path: Path) -> Path:
    """Training and validation loss against optimizer step, one line per strategy."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10.4, 4.0), dpi=110, sharey=True)
    for run in runs:
        for ax, key in zip(axes, ("loss", "eval_loss")):
            points = [(r["step"], r[key]) for r in run.history if key in r]
            if points:
                ax.plot(*zip(*points), label=run.strategy)
    for ax, title in zip(axes, ("training loss", "validation loss")):
        ax.set_xlabel("optimizer step")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("cross-entropy (nats)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_strategy_attention(runs: list[StrategyRun], text: str, path: Path) -> Path:
    """The last layer's attention, averaged over heads, one panel per strategy, for the same text."""
    panels, tokens = [], []
    for run in runs:
        tokens, weights, _ = attention_weights(run.model_dir, text)
        panels.append((f"{run.strategy} (last layer, mean of heads)", weights.mean(axis=0)))
    return plot_attention(panels, tokens, path)


def _table(rows: list[Row], protocol: str, strategies: list[str], lengths: list[int]) -> list[str]:
    values = {(r.strategy, r.eval_length): r.perplexity for r in rows if r.protocol == protocol}
    lines = ["| strategy | " + " | ".join(f"{n}" for n in lengths) + " |", "|---" * (len(lengths) + 1) + "|"]
    for strategy in strategies:
        cells = [f"{values[strategy, n]:.2f}" if (strategy, n) in values else "n/a" for n in lengths]
        lines.append(f"| {strategy} | " + " | ".join(cells) + " |")
    return lines


def paper_table() -> list[str]:
    lines = [
        "| paper strategy (hfgpt name) | 512 (L) | 1012 (~2L) | 2512 (~4.9L) | 4512 (~8.8L) |",
        "|---|---|---|---|---|",
    ]
    for name, (ours, values) in PAPER_PERPLEXITY.items():
        lines.append(f"| {name} (`{ours}`) | " + " | ".join(f"{v:.2f}" for v in values) + " |")
    return lines


def write_report(
    comparison: Comparison,
    runs: list[StrategyRun],
    rows: list[Row],
    notes: list[str],
    lengths: list[int],
    protocols: list[str],
    seconds: float,
    path: Path,
) -> Path:
    strategies = [run.strategy for run in runs]
    targs = comparison.strategy_arguments(strategies[0])
    config = json.loads((runs[0].model_dir / "config.json").read_text())
    vocabulary = config["vocab_size"]
    series = list(dict.fromkeys([*strategies, *(row.strategy for row in rows)]))  # with rope+<scaling>
    lines = [
        "# Positional encodings: extrapolation comparison",
        "",
        f"Trained at L = {comparison.max_length} tokens, evaluated on held-out text at {', '.join(map(str, lengths))} "
        f"tokens. Perplexity (lower is better); n/a: the strategy cannot encode that length.",
        "",
    ]
    for protocol in protocols:
        how = (
            f"windows every {comparison.stride()} tokens, each scoring only its new tokens"
            if protocol == "sliding"
            else "windows side by side"
        )
        lines += [f"## {protocol} ({how})", "", *_table(rows, protocol, series, lengths), ""]
    if comparison.scaling_list():
        lines += [
            "`rope+<scaling>`: the trained rope model, evaluated at each length with that context extension "
            f"stretched by length / {comparison.max_length} (linear: position interpolation; ntk: NTK-aware base "
            "scaling; yarn: YaRN); no weight changes.",
            "",
        ]
    if notes:
        lines += ["Not evaluated:", "", *[f"* {note}" for note in notes], ""]
    lines += [
        "![perplexity against evaluation length](extrapolation.png)",
        "",
        "## Training",
        "",
        "![training and validation loss per strategy](training_curves.png)",
        "",
        "| strategy | final training loss | final validation loss | training time |",
        "|---|---|---|---|",
    ]
    for run in runs:
        train_losses = [r["loss"] for r in run.history if "loss" in r]
        val_losses = [r["eval_loss"] for r in run.history if "eval_loss" in r]
        took = f"{run.seconds:.0f} s" if run.trained else "reused"
        lines.append(
            f"| {run.strategy} | {train_losses[-1] if train_losses else float('nan'):.3f} | "
            f"{val_losses[-1] if val_losses else float('nan'):.3f} | {took} |"
        )
    corpus = ", ".join(comparison.train.corpus) or "the *.py modules of Python's standard library"
    lines += [
        "",
        "## Settings",
        "",
        f"* corpus: {corpus}; {targs.val_fraction:.0%} held out (whole documents, seed {targs.seed})",
        f"* tokenizer: {targs.tokenizer}, a vocabulary of {vocabulary:,} tokens",
        f"* model: preset {targs.preset}, {config['n_layers']} layers, {config['emb_dim']} wide, "
        f"{config['n_heads']} heads; context length {config['context_length']}",
        f"* training: {targs.max_steps} steps of {targs.batch_size} windows of {comparison.max_length} tokens, "
        f"learning rate {targs.learning_rate} (cosine), seed {targs.seed}, identical data order for every strategy",
        f"* evaluation: the first {comparison.options.eval_tokens} held-out tokens at every length",
        f"* wall time of this call: {seconds:.0f} s (training {sum(r.seconds for r in runs):.0f} s)",
        "",
        "## For comparison: the ALiBi paper",
        "",
        "Press et al., *Train Short, Test Long* (ICLR 2022), appendix Table 2: WikiText-103, a 247M-parameter "
        "model trained at L = 512, non-overlapping evaluation, perplexity:",
        "",
        *paper_table(),
        "",
        "![attention of the last layer per strategy](attention.png)",
        "",
    ]
    path.write_text("\n".join(lines))
    return path


def write_all(
    comparison: Comparison,
    runs: list[StrategyRun],
    rows: list[Row],
    notes: list[str],
    lengths: list[int],
    protocols: list[str],
    seconds: float,
) -> dict[str, Path]:
    """Every file of the comparison, in its output directory; returns them by name."""
    output_dir = Path(comparison.options.output_dir)
    files = {
        "results": output_dir / "results.csv",
        "extrapolation": output_dir / "extrapolation.png",
        "training_curves": output_dir / "training_curves.png",
        "attention": output_dir / "attention.png",
        "report": output_dir / "report.md",
    }
    write_csv(rows, files["results"])
    plot_extrapolation(rows, protocols, comparison.max_length, files["extrapolation"])
    plot_training_curves(runs, files["training_curves"])
    plot_strategy_attention(runs, comparison.options.attention_text, files["attention"])
    write_report(comparison, runs, rows, notes, lengths, protocols, seconds, files["report"])
    return files


__all__ = ["PAPER_PERPLEXITY", "write_all"]
