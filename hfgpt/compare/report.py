"""The comparison's files: results.csv, extrapolation.png (accuracy.png for a task), training_curves.png,
attention.png and report.md.

With several seeds, every number shown is the mean over seeds with its 95% confidence interval (Student's t
over the seeds, `hfgpt.compare.stats`), and report.md adds, per protocol and length, which pairwise
differences a paired t-test across seeds finds significant (p < 0.05): on per-seed log-perplexities (the
held-out loss) for text, on per-seed accuracies for a task.
"""

from __future__ import annotations

import csv
import json
import math
from collections import defaultdict
from pathlib import Path

from hfgpt.attention_maps import attention_weights, plot_attention
from hfgpt.compare.arguments import TASK_FACTORS, Comparison
from hfgpt.compare.runs import Row, StrategyRun
from hfgpt.compare.stats import Summary, paired_t_test, summarize
from hfgpt.plots import pyplot

SIGNIFICANCE = 0.05
COLUMNS = ["strategy", "eval_length", "protocol", "loss", "perplexity", "seed", "task", "accuracy"]
# Kazemnejad et al., "The Impact of Positional Encoding on Length Generalization in Transformers" (NeurIPS 2023):
# decoder-only models trained on short examples of synthetic tasks, tested on longer ones.
NOPE_FINDING = (
    "Kazemnejad et al. (NeurIPS 2023) train decoder-only models on short examples of copy, reverse, addition "
    "and other synthetic tasks and test them on longer ones: NoPE (`none`) and T5's relative bias (`t5`) "
    "generalize beyond the training length better than learned absolute positions (`learned`), ALiBi "
    "(`alibi`) and RoPE (`rope`); every method's accuracy still falls with length."
)

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
        writer.writerow(COLUMNS)
        for row in rows:
            writer.writerow(
                [
                    row.strategy,
                    row.eval_length,
                    row.protocol,
                    f"{row.loss:.6f}",
                    f"{row.perplexity:.4f}",
                    row.seed,
                    row.task or "",
                    "" if row.accuracy is None else f"{row.accuracy:.4f}",
                ]
            )


def per_seed(rows: list[Row], protocol: str, metric: str) -> dict[tuple[str, int], dict[int, float]]:
    """`{(strategy, length): {seed: value}}` of one protocol's rows; `metric` is a `Row` field."""
    values: dict[tuple[str, int], dict[int, float]] = defaultdict(dict)
    for row in rows:
        if row.protocol == protocol:
            values[row.strategy, row.eval_length][row.seed] = getattr(row, metric)
    return values


def summaries(rows: list[Row], protocol: str, metric: str) -> dict[tuple[str, int], Summary]:
    return {
        key: summarize([v for _, v in sorted(seeds.items())])
        for key, seeds in per_seed(rows, protocol, metric).items()
    }


def _metric(comparison: Comparison) -> tuple[str, str]:
    """`(Row field shown, Row field tested)`: accuracy for a task, else perplexity (tested on its log, the loss)."""
    return ("accuracy", "accuracy") if comparison.options.task is not None else ("perplexity", "loss")


def _cell(summary: Summary | None, percent: bool, bold: bool = False) -> str:
    if summary is None:
        return "n/a"
    scale, digits = (100.0, 1) if percent else (1.0, 2)
    text = f"{summary.mean * scale:.{digits}f}"
    if summary.half_width is not None:
        text += f" ± {summary.half_width * scale:.{digits}f}"
    return f"**{text}**" if bold else text


def _table(
    stats: dict[tuple[str, int], Summary], strategies: list[str], lengths: list[int], L: int, percent: bool
) -> list[str]:
    """One row per strategy, one column per length; the best mean of each column in bold."""

    def header(n: int) -> str:
        factor = n / L
        return f"{n} ({factor:g}L)" if factor != 1 else f"{n} (L)"

    lines = [
        "| strategy | " + " | ".join(header(n) for n in lengths) + " |",
        "|---" + "|---:" * len(lengths) + "|",
    ]
    best = {}
    for n in lengths:
        means = [stats[s, n].mean for s in strategies if (s, n) in stats]
        if means:
            best[n] = max(means) if percent else min(means)
    for strategy in strategies:
        cells = [
            _cell(
                stats.get((strategy, n)),
                percent,
                (strategy, n) in stats and stats[strategy, n].mean == best[n],
            )
            for n in lengths
        ]
        lines.append(f"| {strategy} | " + " | ".join(cells) + " |")
    return lines


def significance_table(
    rows: list[Row], protocol: str, strategies: list[str], lengths: list[int], task: bool
) -> list[str]:
    """Every pair of strategies at every length: the mean per-seed difference, the paired t-test's p-value, and
    whether it is below `SIGNIFICANCE` (bold, with the better strategy named)."""
    metric = "accuracy" if task else "loss"
    values = per_seed(rows, protocol, metric)
    lines = ["| pair | " + " | ".join(str(n) for n in lengths) + " |", "|---" + "|---" * len(lengths) + "|"]
    for i, a in enumerate(strategies):
        for b in strategies[i + 1 :]:
            cells = []
            for n in lengths:
                seeds = sorted(set(values.get((a, n), {})) & set(values.get((b, n), {})))
                if len(seeds) < 2:
                    cells.append("n/a")
                    continue
                test = paired_t_test([values[a, n][s] for s in seeds], [values[b, n][s] for s in seeds])
                if task:
                    effect = f"{test.difference * 100:+.1f} pts"
                    better = a if test.difference > 0 else b
                else:  # a ratio of geometric-mean perplexities
                    effect = f"×{math.exp(test.difference):.3f}"
                    better = a if test.difference < 0 else b
                text = f"{effect}, p = {test.p:.3f}"
                cells.append(f"**{text}: {better}**" if test.p < SIGNIFICANCE else text)
            lines.append(f"| {a} vs {b} | " + " | ".join(cells) + " |")
    return lines


def _series(rows: list[Row]) -> list[str]:
    return list(dict.fromkeys(row.strategy for row in rows))


def _plot_lines(ax, stats: dict[tuple[str, int], Summary], strategy: str, x_of, scale: float = 1.0) -> None:
    points = sorted((n, summary) for (s, n), summary in stats.items() if s == strategy)
    if not points:
        return
    xs = [x_of(n) for n, _ in points]
    (line,) = ax.plot(xs, [p.mean * scale for _, p in points], marker="o", markersize=4, label=strategy)
    if all(p.half_width is not None for _, p in points):
        ax.fill_between(
            xs,
            [p.low * scale for _, p in points],
            [p.high * scale for _, p in points],
            color=line.get_color(),
            alpha=0.15,
            linewidth=0,
        )


def plot_extrapolation(rows: list[Row], protocols: list[str], train_length: int, path: Path) -> Path:
    """Perplexity against evaluation length (log-log), one line per strategy (the mean over seeds, with its 95%
    confidence band when there are several), one panel per protocol."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(protocols), figsize=(5.2 * len(protocols), 4.0), dpi=110, squeeze=False)
    for ax, protocol in zip(axes[0], protocols):
        stats = summaries(rows, protocol, "perplexity")
        for strategy in _series(rows):
            _plot_lines(ax, stats, strategy, lambda n: n)
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


def plot_accuracy(rows: list[Row], task: str, train_length: int, path: Path) -> Path:
    """Exact-match accuracy against example length (in multiples of L), one line per strategy (the mean over
    seeds, with its 95% confidence band when there are several)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 4.0), dpi=110)
    stats = summaries(rows, "exact-match", "accuracy")
    for strategy in _series(rows):
        _plot_lines(ax, stats, strategy, lambda n: n / train_length, scale=100.0)
    ax.axvline(1.0, color="grey", linestyle="--", linewidth=1, label=f"training length L = {train_length}")
    ax.set_xticks(list(TASK_FACTORS))
    ax.set_xlabel("example length (multiples of the training length L)")
    ax.set_ylabel("exact-match accuracy (%)")
    ax.set_ylim(-3, 103)
    ax.set_title(f"{task}: length generalization")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_training_curves(runs: list[StrategyRun], path: Path) -> Path:
    """Training and validation loss against optimizer step, one colour per strategy (one line per seed)."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10.4, 4.0), dpi=110, sharey=True)
    colours = {}
    for run in runs:
        for ax, key in zip(axes, ("loss", "eval_loss")):
            points = [(r["step"], r[key]) for r in run.history if key in r]
            if not points:
                continue
            first = (run.strategy, key) not in colours
            (line,) = ax.plot(
                *zip(*points),
                color=colours.get((run.strategy, key)),
                alpha=1.0 if first else 0.5,
                label=run.strategy if first else None,
            )
            colours.setdefault((run.strategy, key), line.get_color())
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
    """The last layer's attention, averaged over heads, one panel per strategy (its first seed), for the same
    text."""
    panels, tokens, seen = [], [], set()
    for run in runs:
        if run.strategy in seen:
            continue
        seen.add(run.strategy)
        tokens, weights, _ = attention_weights(run.model_dir, text)
        panels.append((f"{run.strategy} (last layer, mean of heads)", weights.mean(axis=0)))
    return plot_attention(panels, tokens, path)


def paper_table() -> list[str]:
    lines = [
        "| paper strategy (hfgpt name) | 512 (L) | 1012 (~2L) | 2512 (~4.9L) | 4512 (~8.8L) |",
        "|---|---|---|---|---|",
    ]
    for name, (ours, values) in PAPER_PERPLEXITY.items():
        lines.append(f"| {name} (`{ours}`) | " + " | ".join(f"{v:.2f}" for v in values) + " |")
    return lines


def beside_paper(rows: list[Row], lengths: list[int]) -> list[str]:
    """Our non-overlapping perplexities at the paper's four lengths (or the first four of ours) next to Table 2's,
    and each side's spread at L (worst / best)."""
    stats = summaries(rows, "non-overlapping", "perplexity")
    ours = lengths[:4]
    lines = [
        "| strategy | " + " | ".join(f"ours {n} / paper {p}" for n, p in zip(ours, PAPER_LENGTHS)) + " |",
        "|---" + "|---:" * len(ours) + "|",
    ]
    at_l = {}
    for name, (strategy, paper) in PAPER_PERPLEXITY.items():
        cells = []
        for n, value in zip(ours, paper):
            summary = stats.get((strategy, n))
            cells.append(f"{_cell(summary, False)} / {value:.2f}")
        if (strategy, ours[0]) in stats:
            at_l[strategy] = stats[strategy, ours[0]].mean
        lines.append(f"| {strategy} ({name}) | " + " | ".join(cells) + " |")
    paper_l = [values[0] for _, values in PAPER_PERPLEXITY.values()]
    lines.append("")
    if at_l:
        spread = max(at_l.values()) / min(at_l.values())
        verdict = "within" if spread <= 1.05 else "not within"
        lines.append(
            f"Spread at L (worst / best): ours {spread:.3f} ({verdict} 5%), the paper's "
            f"{max(paper_l) / min(paper_l):.3f} ({min(paper_l)}-{max(paper_l)})."
        )
    return lines


def _training_table(runs: list[StrategyRun], several: bool) -> list[str]:
    def last(run: StrategyRun, key: str) -> float:
        return next((r[key] for r in reversed(run.history) if key in r), math.nan)

    if not several:
        lines = [
            "| strategy | final training loss | final validation loss | training time |",
            "|---|---|---|---|",
        ]
        for run in runs:
            took = f"{run.seconds:.0f} s" if run.trained else "reused"
            lines.append(
                f"| {run.strategy} | {last(run, 'loss'):.3f} | {last(run, 'eval_loss'):.3f} | {took} |"
            )
        return lines
    lines = [
        "| strategy | seeds | final training loss | final validation loss | training time (all seeds) |",
        "|---|---|---|---|---|",
    ]
    for strategy in dict.fromkeys(run.strategy for run in runs):
        mine = [run for run in runs if run.strategy == strategy]
        train = _cell(summarize([last(r, "loss") for r in mine]), False)
        val = summarize([last(r, "eval_loss") for r in mine])
        reused = sum(not r.trained for r in mine)
        took = f"{sum(r.seconds for r in mine):.0f} s" + (f" ({reused} reused)" if reused else "")
        lines.append(
            f"| {strategy} | {len(mine)} | {train} | {val.mean:.3f} ± {val.half_width:.3f} | {took} |"
        )
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
    strategies = list(dict.fromkeys(run.strategy for run in runs))
    seeds = comparison.seed_list()
    several = len(seeds) > 1
    task = comparison.options.task
    targs = comparison.strategy_arguments(strategies[0])
    config = json.loads((runs[0].model_dir / "config.json").read_text())
    series = list(dict.fromkeys([*strategies, *(row.strategy for row in rows)]))  # with rope+<scaling>
    L = comparison.max_length
    shown, tested = _metric(comparison)
    over_seeds = (
        f" Mean over {len(seeds)} seeds ({', '.join(map(str, seeds))}) ± the half-width of its 95% confidence "
        "interval (Student's t over the seeds); the best mean of each column in bold."
        if several
        else " The best of each column in bold."
    )
    if task:
        lines = [
            f"# Positional encodings: length generalization on the {task} task",
            "",
            f"Trained on {task} examples of up to L = {L} tokens (loss on the answer only), tested on "
            f"{comparison.options.task_examples} new examples at each of {', '.join(map(str, lengths))} tokens. "
            "Exact-match accuracy of the greedy answer, in % (higher is better); n/a: the strategy cannot "
            f"encode that length.{over_seeds}",
            "",
            *_table(summaries(rows, "exact-match", "accuracy"), series, lengths, L, percent=True),
            "",
            "Mean cross-entropy of the answer tokens given the true tokens before them, in nats (lower is "
            "better): how far from right the answers are, where exact match is all or nothing.",
            "",
            *_table(summaries(rows, "exact-match", "loss"), series, lengths, L, percent=False),
            "",
        ]
    else:
        lines = [
            "# Positional encodings: extrapolation comparison",
            "",
            f"Trained at L = {L} tokens, evaluated on held-out text at {', '.join(map(str, lengths))} tokens. "
            f"Perplexity (lower is better); n/a: the strategy cannot encode that length.{over_seeds}",
            "",
        ]
        for protocol in protocols:
            how = (
                f"windows every {comparison.stride()} tokens, each scoring only its new tokens"
                if protocol == "sliding"
                else "windows side by side"
            )
            table = _table(summaries(rows, protocol, "perplexity"), series, lengths, L, percent=False)
            lines += [f"## {protocol} ({how})", "", *table, ""]
    if comparison.scaling_list():
        lines += [
            "`rope+<scaling>`: the trained rope model, evaluated at each length with that context extension "
            f"stretched by length / {L} (linear: position interpolation; ntk: NTK-aware base "
            "scaling; yarn: YaRN); no weight changes.",
            "",
        ]
    if notes:
        lines += ["Not evaluated:", "", *[f"* {note}" for note in notes], ""]
    if several:
        what = (
            "per-seed accuracies (difference in percentage points, first minus second)"
            if task
            else "per-seed log-perplexities (the held-out loss; shown as the ratio of the first strategy's "
            "geometric-mean perplexity to the second's)"
        )
        lines += [
            "## Which differences are significant",
            "",
            f"Paired t-test across the {len(seeds)} seeds (each seed trains every strategy on the same data, so "
            f"differences are paired by seed) on {what}, two-sided; **bold**: p < {SIGNIFICANCE}, with the better "
            f"strategy named. {len(strategies) * (len(strategies) - 1) // 2} pairs × {len(lengths)} lengths per "
            "protocol are tested without correction for multiple comparisons: at p < 0.05, about one in twenty "
            "true ties is marked by chance.",
            "",
        ]
        for protocol in protocols:
            lines += [
                f"### {protocol}",
                "",
                *significance_table(rows, protocol, series, lengths, bool(task)),
                "",
            ]
    picture = "accuracy.png" if task else "extrapolation.png"
    what_picture = "accuracy against example length" if task else "perplexity against evaluation length"
    lines += [
        f"![{what_picture}]({picture})",
        "",
        "## Training",
        "",
        "![training and validation loss per strategy](training_curves.png)",
        "",
        *_training_table(runs, several),
    ]
    if task:
        data = (
            f"* task: {task}, examples of {get_task_description(task)}; training lengths drawn uniformly up to "
            f"L = {L} tokens, a fresh example for every row of every step"
        )
    else:
        corpus = ", ".join(comparison.train.corpus) or (
            "every *.py under Python's standard library but site-packages"
            if comparison.options.gpu_paper
            else "the *.py modules of Python's standard library"
        )
        data = (
            f"* corpus: {corpus}; {targs.val_fraction:.0%} held out (whole documents, seed {targs.seed})\n"
            f"* tokenizer: {targs.tokenizer}, a vocabulary of {config['vocab_size']:,} tokens"
        )
    unit = "examples" if task else f"windows of {L} tokens"
    seed_text = f"seeds {', '.join(map(str, seeds))}" if several else f"seed {targs.seed}"
    lines += [
        "",
        "## Settings",
        "",
        data,
        f"* model: preset {targs.preset}, {config['n_layers']} layers, {config['emb_dim']} wide, "
        f"{config['n_heads']} heads; context length {config['context_length']}",
        f"* training: {targs.max_steps} steps of {targs.batch_size} {unit}, learning rate {targs.learning_rate} "
        f"(cosine), {seed_text}, identical data order for every strategy",
        (
            f"* evaluation: {comparison.options.task_examples} test examples per length, the same for every "
            "strategy and seed"
            if task
            else f"* evaluation: the first {comparison.eval_tokens} held-out tokens at every length"
        ),
        f"* wall time of this call: {seconds:.0f} s (training {sum(r.seconds for r in runs):.0f} s)",
        "",
    ]
    if task:
        lines += ["## For comparison: the NoPE paper", "", NOPE_FINDING, ""]
    elif comparison.options.gpu_paper:
        lines += [
            "## Beside the ALiBi paper",
            "",
            "Press et al., *Train Short, Test Long* (ICLR 2022), appendix Table 2 (WikiText-103, a 247M-parameter "
            "model trained at L = 512, non-overlapping evaluation), next to this run's non-overlapping "
            "perplexities:",
            "",
            *beside_paper(rows, lengths),
            "",
        ]
    else:
        lines += [
            "## For comparison: the ALiBi paper",
            "",
            "Press et al., *Train Short, Test Long* (ICLR 2022), appendix Table 2: WikiText-103, a 247M-parameter "
            "model trained at L = 512, non-overlapping evaluation, perplexity:",
            "",
            *paper_table(),
            "",
        ]
    lines += ["![attention of the last layer per strategy](attention.png)", ""]
    path.write_text("\n".join(lines))
    return path


def get_task_description(name: str) -> str:
    from hfgpt.tasks import get_task

    return get_task(name).description


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
    output_dir = comparison.output_dir
    task = comparison.options.task
    files = {
        "results": output_dir / "results.csv",
        "accuracy" if task else "extrapolation": output_dir
        / ("accuracy.png" if task else "extrapolation.png"),
        "training_curves": output_dir / "training_curves.png",
        "attention": output_dir / "attention.png",
        "report": output_dir / "report.md",
    }
    write_csv(rows, files["results"])
    if task:
        plot_accuracy(rows, task, comparison.max_length, files["accuracy"])
    else:
        plot_extrapolation(rows, protocols, comparison.max_length, files["extrapolation"])
    plot_training_curves(runs, files["training_curves"])
    text = comparison.options.attention_text
    if text is None:
        from hfgpt.compare.arguments import ATTENTION_TEXT
        from hfgpt.compare.taskruns import task_attention_text

        text = task_attention_text(comparison) if task else ATTENTION_TEXT
    plot_strategy_attention(runs, text, files["attention"])
    write_report(comparison, runs, rows, notes, lengths, protocols, seconds, files["report"])
    return files


__all__ = ["COLUMNS", "NOPE_FINDING", "PAPER_PERPLEXITY", "write_all"]
