"""The positional-encoding workbench: train one model per strategy on the same budget, compare how they extrapolate.

    settings -> for each strategy: `train()` into `<output_dir>/<strategy>/` (skipped when already complete)
    -> held-out text scored at every evaluation length with both protocols (`hfgpt.evaluation`)
    -> results.csv, extrapolation.png, training_curves.png, attention.png, report.md

Every strategy gets the same `TrainArguments` but `position_encoding`: the same corpus, held-out split,
tokenizer (trained on the same training split with the same seed), model size, seed, data order and number
of optimizer steps, so the only difference between the runs is where positions enter the model.

Resumable: a strategy whose model directory is complete (`hfgpt.training.outputs.finished_run`) is not
retrained, an interrupted one continues from its checkpoint, and `settings.json` refuses a rerun with other
training settings in the same directory (its models would not be comparable).

Evaluation protocols, over the same held-out tokens at every length:

* `non-overlapping`: windows of `length` tokens side by side (the ALiBi paper's main protocol);
* `sliding`: windows start every `sliding_stride` tokens (default: half the *training* length, the same for
  every evaluation length), and each scores only the tokens no earlier window scored, so every scored token
  past the first window sees at least `length - stride + 1` tokens of context.
"""

from __future__ import annotations

import csv
import json
import math
import sys
import sysconfig
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from hfgpt.errors import ConfigError
from hfgpt.training.arguments import TrainArguments, not_empty, option, positive, validate_fields

PROTOCOLS = ("non-overlapping", "sliding")
BUILT_IN_STRATEGIES = ("learned", "sinusoidal", "rope", "none")
# compared by default when their plugins (hfgpt-alibi, hfgpt-t5bias) are installed
PLUGIN_STRATEGIES = ("alibi", "t5")
# The default model: the small-cpu preset narrowed to 3 layers x 128, so six strategies train in minutes.
COMPARE_PRESET = "compare"
COMPARE_MODEL = dict(preset="small-cpu", n_layers=3, emb_dim=128, n_heads=4)
ATTENTION_TEXT = "def add(a, b):\n    return a + b\n"

# Press, Smith & Lewis, "Train Short, Test Long" (ICLR 2022), appendix Table 2: WikiText-103, 247M parameters,
# trained at L = 512, non-overlapping evaluation; perplexity at 512, 1012, 2512 and 4512 tokens.
PAPER_LENGTHS = (512, 1012, 2512, 4512)
PAPER_PERPLEXITY = {
    "sinusoidal": ("sinusoidal", (20.05, 43.54, 132.41, 209.37)),
    "rotary": ("rope", (20.07, 21.37, 31.58, 39.15)),
    "T5 bias": ("t5", (19.65, 18.79, 20.41, 25.91)),
    "ALiBi": ("alibi", (19.73, 18.73, 18.41, 18.41)),
}


def _shared(name: str, default: Any = None, **changes: Any):
    """A field of `TrainArguments` (its help, group, check), with another default: defined once."""
    source = next(f for f in fields(TrainArguments) if f.name == name)
    meta = {**source.metadata, **changes}
    if meta["positional"]:
        return option(default_factory=list, **meta)
    return option(default, **meta)


def stdlib_corpus() -> list[str]:
    """The default corpus: the top-level modules of Python's standard library (about 5 MB on CPython 3.11),
    present on every machine that runs hfgpt, with no download."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(str(path) for path in root.glob("*.py"))
    if not files:
        raise ConfigError(f"no *.py files in the standard library folder {root}: pass a CORPUS")
    return files


def comma_names(text: str) -> list[str]:
    """`"a, b,,a"` -> `["a", "b"]`: the names of a comma-separated option, blanks and repeats dropped."""
    return list(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))


def default_strategies() -> list[str]:
    """The built-in strategies, then the plugin strategies worth comparing that are installed."""
    from hfgpt.plugins import strategies

    installed = strategies("position_encoding")
    return [*BUILT_IN_STRATEGIES, *(name for name in PLUGIN_STRATEGIES if name in installed)]


@dataclass
class CompareArguments:
    """Everything `hfgpt compare` needs; each field is one command-line option (see `hfgpt compare --help`)."""

    corpus: list[str] = _shared(
        "corpus",
        help="text files, folders, globs or datasets as for `hfgpt train` (default: the *.py modules of "
        "Python's standard library, about 5 MB, on every machine)",
    )
    strategies: str | None = option(
        None,
        group="comparison",
        help="comma-separated positional strategies, built-in or from installed plugins (see `hfgpt plugins`) "
        f"(default: {','.join(BUILT_IN_STRATEGIES)}, and {' and '.join(PLUGIN_STRATEGIES)} when installed)",
    )
    max_length: int = _shared("max_length", 64, help="training length L: tokens per training window")
    eval_lengths: str | None = option(
        None,
        group="comparison",
        help="comma-separated evaluation lengths (default: L,2L,4L,8L)",
    )
    protocols: str = option(
        ",".join(PROTOCOLS), group="comparison", check=not_empty, help="evaluation protocols to run"
    )
    sliding_stride: int | None = option(
        None,
        group="comparison",
        check=positive,
        help="stride of the sliding protocol, at most the shortest evaluation length (default: L/2)",
    )
    rope_scalings: str = option(
        "",
        group="comparison",
        help="context extensions to evaluate the trained rope model with, comma-separated: linear, ntk, yarn; "
        "each is a series `rope+<name>` stretched to every evaluation length (factor = length / L)",
    )
    eval_tokens: int = option(
        16_384,
        group="comparison",
        check=positive,
        help="score at most this many held-out tokens per length (the first ones; the same for every strategy)",
    )
    attention_text: str = option(
        ATTENTION_TEXT, group="comparison", check=not_empty, help="text whose attention attention.png shows"
    )
    output_dir: str = _shared("output_dir", "runs/compare", help="where models, results and report go")

    text_column: str = _shared("text_column", "text")
    tokenizer: str = _shared("tokenizer", "bpe")
    vocab_size: int | None = _shared("vocab_size", 2048)
    val_fraction: float = _shared("val_fraction", 0.1)
    skip_bad_files: bool = _shared("skip_bad_files", False)
    num_proc: int | None = _shared("num_proc")

    preset: str = _shared(
        "preset",
        COMPARE_PRESET,
        help=f"size preset: {COMPARE_PRESET!r} (small-cpu narrowed to 3 layers x 128 wide), tiny, small-cpu, ...",
    )
    context_length: int | None = _shared(
        "context_length", help="context length, what `learned` can encode (default: the training length L)"
    )
    emb_dim: int | None = _shared("emb_dim")
    n_heads: int | None = _shared("n_heads")
    n_layers: int | None = _shared("n_layers")
    drop_rate: float | None = _shared("drop_rate")

    steps: int = _shared("max_steps", 1500, help="optimizer steps per strategy", flags=("--steps",))
    batch_size: int = _shared("batch_size", 4)
    learning_rate: float = _shared("learning_rate", 2e-3)
    weight_decay: float = _shared("weight_decay", 0.1)
    seed: int = _shared("seed", 123)
    eval_every: int | None = _shared("eval_every", 100)
    eval_batch_size: int = _shared("eval_batch_size", 8)
    max_eval_tokens: int = _shared("max_eval_tokens", 8192)
    cpu: bool = _shared("cpu", False)
    show_progress: bool = _shared("show_progress", True)

    def __post_init__(self) -> None:
        self.corpus = list(self.corpus)
        validate_fields(self)

    def strategy_list(self) -> list[str]:
        if self.strategies is None:
            return default_strategies()
        names = comma_names(self.strategies)
        if not names:
            raise ConfigError(f"--strategies must name at least one strategy, got {self.strategies!r}")
        return names

    def protocol_list(self) -> list[str]:
        names = comma_names(self.protocols)
        bad = [name for name in names if name not in PROTOCOLS]
        if bad or not names:
            raise ConfigError(
                f"--protocols must be a comma-separated subset of {','.join(PROTOCOLS)}, got {self.protocols!r}"
            )
        return names

    def length_list(self) -> list[int]:
        if self.eval_lengths is None:
            return [self.max_length * factor for factor in (1, 2, 4, 8)]
        try:
            lengths = [int(item) for item in self.eval_lengths.split(",")]
        except ValueError:
            lengths = []
        if not lengths or any(length <= 0 for length in lengths):
            raise ConfigError(
                f"--eval-lengths must be comma-separated positive integers (e.g. 64,128), got {self.eval_lengths!r}"
            )
        return sorted(set(lengths))

    def scaling_list(self) -> list[str]:
        from hfgpt.position_encoding import ROPE_SCALINGS

        names = comma_names(self.rope_scalings)
        bad = [name for name in names if name not in ROPE_SCALINGS]
        if bad:
            raise ConfigError(
                f"--rope-scalings must be a comma-separated subset of {','.join(ROPE_SCALINGS)}, "
                f"got {self.rope_scalings!r}"
            )
        return names

    def stride(self) -> int:
        return self.sliding_stride or max(1, self.max_length // 2)

    def train_arguments(self, strategy: str) -> TrainArguments:
        """The `hfgpt train` run of one strategy: identical for every strategy but `position_encoding`.

        Every field that `TrainArguments` also has is passed on as it is (`steps` as `max_steps`); then the
        corpus, vocabulary, context length, output directory and sample get the comparison's values, and the
        `compare` preset becomes `COMPARE_MODEL` (sizes given explicitly still win).
        """
        train_fields = {f.name for f in fields(TrainArguments)}
        settings = {f.name: getattr(self, f.name) for f in fields(self) if f.name in train_fields}
        context_length = self.context_length or self.max_length
        settings.update(
            corpus=self.corpus or stdlib_corpus(),
            vocab_size=self.vocab_size if self.tokenizer == "bpe" else None,
            position_encoding=strategy,
            context_length=context_length,
            output_dir=str(Path(self.output_dir) / strategy),
            max_steps=self.steps,
            prompt="def",
            max_new_tokens=max(1, min(20, context_length // 2)),
        )
        if self.preset == COMPARE_PRESET:
            for name, value in COMPARE_MODEL.items():
                if name == "preset" or settings[name] is None:
                    settings[name] = value
        return TrainArguments(**settings)

    def training_settings(self) -> dict[str, Any]:
        """What decides the trained models: a rerun in the same directory must match it to reuse them."""
        ignored = {
            "strategies",
            "eval_lengths",
            "protocols",
            "sliding_stride",
            "eval_tokens",
            "attention_text",
            "rope_scalings",
        }
        ignored |= {"output_dir", "show_progress", "num_proc", "cpu", "eval_batch_size"}
        return {key: value for key, value in asdict(self).items() if key not in ignored}


def check_arguments(args: CompareArguments) -> tuple[list[str], list[int], list[str]]:
    """Every option and strategy name checked before any corpus is read: `(strategies, lengths, protocols)`."""
    from hfgpt.evaluation import check_eval_options
    from hfgpt.plugins import get_registration
    from hfgpt.training.pretraining import check_strategies

    strategies, lengths, protocols = args.strategy_list(), args.length_list(), args.protocol_list()
    for name in strategies:
        get_registration("position_encoding", name)  # an unknown name lists what is installed
    if "sliding" in protocols:
        check_eval_options(lengths, args.stride())
    if args.sliding_stride is not None and "sliding" not in protocols:
        raise ConfigError(
            "--sliding-stride is for the sliding protocol: add it to --protocols or leave it out"
        )
    if args.scaling_list() and "rope" not in strategies:
        raise ConfigError(
            "--rope-scalings stretch the rope model: add rope to --strategies or leave them out"
        )
    for name in strategies:
        check_strategies(args.train_arguments(name))  # tokenizer options, model shape, window length
    return strategies, lengths, protocols


def check_settings(output_dir: Path, settings: dict[str, Any]) -> None:
    """Refuse to mix models trained with other settings into this comparison; record the settings."""
    path = output_dir / "settings.json"
    if path.is_file():
        saved = json.loads(path.read_text())
        changed = sorted(key for key in set(saved) | set(settings) if saved.get(key) != settings.get(key))
        if changed:
            raise ConfigError(
                f"{output_dir} holds models trained with other settings ({', '.join(changed)} differ): "
                "choose another --output-dir or repeat the earlier settings"
            )
    output_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(settings, indent=1))


@dataclass
class StrategyRun:
    """One strategy's model: where it is, its training history, and whether this call trained it."""

    strategy: str
    model_dir: Path
    history: list[dict]
    trained: bool
    seconds: float


def train_strategy(args: CompareArguments, strategy: str, report: Callable[[str], None]) -> StrategyRun:
    """Train `strategy` into `<output_dir>/<strategy>/` unless a complete model is already there."""
    from hfgpt.training.outputs import finished_run, recover, staging_dir
    from hfgpt.training.pretraining import train

    targs = args.train_arguments(strategy)
    model_dir = Path(targs.output_dir)
    for message in recover(model_dir):  # publish a run killed while publishing, before deciding
        report(message)
    if finished_run(model_dir):
        report(f"hfgpt compare: {strategy}: reusing the trained model in {model_dir}")
        log = json.loads((model_dir / "training_log.json").read_text())
        return StrategyRun(strategy, model_dir, log["history"], False, 0.0)
    targs.resume = (staging_dir(model_dir) / "checkpoints").is_dir()
    if model_dir.exists() and not targs.resume:
        targs.overwrite = True  # an unfinished directory left behind: replace it
    report(f"hfgpt compare: {strategy}: {'resuming' if targs.resume else 'training'} {args.steps} steps")
    started = time.perf_counter()
    result = train(targs)
    seconds = time.perf_counter() - started
    report(
        f"hfgpt compare: {strategy}: trained in {seconds:.0f} s, validation loss {result.final_eval_loss:.3f}"
    )
    return StrategyRun(strategy, model_dir, result.history, True, seconds)


def held_out_texts(args: CompareArguments):
    """The validation documents every run held out (the split `prepare()` makes, with the same seed)."""
    from hfgpt.data.sources import load_corpus, split_corpus

    column = args.text_column
    corpus = load_corpus(
        args.corpus or stdlib_corpus(), text_column=column, skip_bad_files=args.skip_bad_files
    )
    corpus = corpus.filter(
        lambda batch: [bool(t.strip()) for t in batch[column]], batched=True, batch_size=16
    )
    return split_corpus(corpus, args.val_fraction, args.seed, column)[1]


@dataclass
class Row:
    strategy: str
    eval_length: int
    protocol: str
    loss: float
    perplexity: float


def evaluate_strategy(
    args: CompareArguments,
    run: StrategyRun,
    held_out,
    lengths: list[int],
    protocols: list[str],
    scaling: str | None = None,
) -> tuple[list[Row], list[str]]:
    """Rows for every encodable (length, protocol), and one note per length the strategy cannot encode.

    With `scaling` (a rope model only) the rows are the series `rope+<scaling>`: at each length the model is
    loaded stretched by `factor = length / L` (1 at L and below), which changes no weight.
    """
    from hfgpt.evaluation import default_device, eval_stream, evaluate
    from hfgpt.loading import load_causal_lm

    series = run.strategy if scaling is None else f"{run.strategy}+{scaling}"
    if scaling is None:
        loads = [(lengths, None)]
    else:
        loads = [([n], {"scaling": scaling, "factor": max(1.0, n / args.max_length)}) for n in lengths]
    rows, notes, text = [], [], None
    for load_lengths, position_options in loads:
        model, tokenizer = load_causal_lm(run.model_dir, position_options)
        model.to(default_device())
        if text is None:
            text = eval_stream(tokenizer, held_out, args.text_column)
        for protocol in protocols:
            stride = args.stride() if protocol == "sliding" else None
            # The first `eval_tokens` tokens: long windows cost length/stride forward passes per token when sliding.
            results = evaluate(
                model,
                tokenizer,
                text,
                load_lengths,
                stride,
                args.eval_batch_size,
                max_tokens=args.eval_tokens,
            )
            for result in results:
                if not result.encodable:
                    if protocol == protocols[0]:
                        notes.append(f"`{series}` at {result.length}: not evaluated, {result.reason}")
                    continue
                rows.append(Row(series, result.length, protocol, result.loss, result.perplexity))
    return rows, notes


def write_csv(rows: list[Row], path: Path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["strategy", "eval_length", "protocol", "loss", "perplexity"])
        for row in rows:
            writer.writerow(
                [row.strategy, row.eval_length, row.protocol, f"{row.loss:.6f}", f"{row.perplexity:.4f}"]
            )


# --- plots ---------------------------------------------------------------------------------------------------
def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_extrapolation(rows: list[Row], protocols: list[str], train_length: int, path: Path) -> Path:
    """Perplexity against evaluation length (log-log), one line per strategy, one panel per protocol."""
    plt = _pyplot()
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
    plt = _pyplot()
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


def attention_weights(model_dir: str | Path, text: str, layer: int = -1):
    """`(tokens, weights)`: the text's tokens and one layer's attention, shape (heads, seq, seq).

    The model is loaded with eager attention, the only implementation that returns its weights.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from hfgpt.loading import check_model_dir, check_tokenizer_dir

    directory = check_tokenizer_dir(check_model_dir(model_dir))
    hf_logging.disable_progress_bar()  # one small model: a loading bar is noise
    try:
        model = AutoModelForCausalLM.from_pretrained(directory, attn_implementation="eager")
        tokenizer = AutoTokenizer.from_pretrained(directory)
    finally:
        hf_logging.enable_progress_bar()
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if not ids:
        raise ConfigError(f"the text {text!r:.60} has no tokens: pass some text")
    limit = getattr(model.transformer.position_encoding, "max_positions", None)
    if limit is not None and len(ids) > limit:
        raise ConfigError(
            f"the text has {len(ids)} tokens, more than the model's {limit} positions: shorten it"
        )
    layers = model.config.n_layers
    if not -layers <= layer < layers:
        raise ConfigError(f"--layer must be between 0 and {layers - 1} (or -1 for the last), got {layer}")
    model.eval()
    with torch.no_grad():
        output = model(input_ids=torch.tensor([ids]), output_attentions=True, use_cache=False)
    tokens = [tokenizer.decode([i]) for i in ids]
    return tokens, output.attentions[layer][0].float().numpy()


def _heatmap(ax, weights, tokens: list[str], title: str) -> None:
    labels = [repr(token)[1:-1] for token in tokens]  # newlines and spaces visible
    ax.imshow(weights, cmap="viridis", vmin=0.0, vmax=max(float(weights.max()), 1e-6))
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=6)
    ax.set_yticks(range(len(labels)), labels, fontsize=6)
    ax.set_xlabel("attended token (key)", fontsize=7)
    ax.set_ylabel("attending token (query)", fontsize=7)
    ax.set_title(title, fontsize=8)


def plot_attention(panels: list[tuple[str, Any]], tokens: list[str], path: str | Path) -> Path:
    """One heatmap per `(title, weights)` panel, tokens on both axes, up to four panels a row."""
    plt = _pyplot()
    columns = min(4, len(panels))
    rows = math.ceil(len(panels) / columns)
    size = 2.2 + 0.16 * len(tokens)
    fig, axes = plt.subplots(rows, columns, figsize=(size * columns, size * rows), dpi=100, squeeze=False)
    for ax in axes.flat[len(panels) :]:
        ax.axis("off")
    for ax, (title, weights) in zip(axes.flat, panels):
        _heatmap(ax, weights, tokens, title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def plot_strategy_attention(runs: list[StrategyRun], text: str, path: Path) -> Path:
    """The last layer's attention, averaged over heads, one panel per strategy, for the same text."""
    panels, tokens = [], []
    for run in runs:
        tokens, weights = attention_weights(run.model_dir, text)
        panels.append((f"{run.strategy} (last layer, mean of heads)", weights.mean(axis=0)))
    return plot_attention(panels, tokens, path)


# --- the report ------------------------------------------------------------------------------------------------
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
    args: CompareArguments,
    runs: list[StrategyRun],
    rows: list[Row],
    notes: list[str],
    lengths: list[int],
    protocols: list[str],
    seconds: float,
    path: Path,
) -> Path:
    strategies = [run.strategy for run in runs]
    targs = args.train_arguments(strategies[0])
    series = list(dict.fromkeys([*strategies, *(row.strategy for row in rows)]))  # with rope+<scaling>
    lines = [
        "# Positional encodings: extrapolation comparison",
        "",
        f"Trained at L = {args.max_length} tokens, evaluated on held-out text at {', '.join(map(str, lengths))} "
        f"tokens. Perplexity (lower is better); n/a: the strategy cannot encode that length.",
        "",
    ]
    for protocol in protocols:
        how = (
            f"windows every {args.stride()} tokens, each scoring only its new tokens"
            if protocol == "sliding"
            else "windows side by side"
        )
        lines += [f"## {protocol} ({how})", "", *_table(rows, protocol, series, lengths), ""]
    if args.scaling_list():
        lines += [
            "`rope+<scaling>`: the trained rope model, evaluated at each length with that context extension "
            f"stretched by length / {args.max_length} (linear: position interpolation; ntk: NTK-aware base "
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
    corpus = ", ".join(args.corpus) if args.corpus else "the *.py modules of Python's standard library"
    lines += [
        "",
        "## Settings",
        "",
        f"* corpus: {corpus}; {args.val_fraction:.0%} held out (whole documents, seed {args.seed})",
        f"* tokenizer: {targs.tokenizer}" + (f", vocabulary {targs.vocab_size}" if targs.vocab_size else ""),
        f"* model: preset {targs.preset}, {targs.n_layers or 'preset'} layers, {targs.emb_dim or 'preset'} wide, "
        f"{targs.n_heads or 'preset'} heads; context length {targs.context_length}",
        f"* training: {args.steps} steps of {args.batch_size} windows of {args.max_length} tokens, learning rate "
        f"{args.learning_rate} (cosine), seed {args.seed}, identical data order for every strategy",
        f"* evaluation: the first {args.eval_tokens} held-out tokens at every length",
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


@dataclass
class CompareResult:
    output_dir: Path
    rows: list[Row]
    notes: list[str]
    runs: list[StrategyRun]
    seconds: float
    files: dict[str, Path] = field(default_factory=dict)


def compare(args: CompareArguments, report: Callable[[str], None] | None = None) -> CompareResult:
    """Train (or reuse) one model per strategy, evaluate all of them and write the comparison; see the module
    docstring. Every option and strategy name is checked before anything is trained."""
    report = report or (lambda message: print(message, file=sys.stderr))
    started = time.perf_counter()
    strategies, lengths, protocols = check_arguments(args)
    output_dir = Path(args.output_dir)
    check_settings(output_dir, args.training_settings())
    runs = []
    for index, strategy in enumerate(strategies, 1):
        report(f"hfgpt compare: [{index}/{len(strategies)}] {strategy}")
        runs.append(train_strategy(args, strategy, report))
    report("hfgpt compare: evaluating")
    held_out = held_out_texts(args)
    rows, notes = [], []
    evaluations = [(run, None) for run in runs]
    evaluations += [(run, name) for run in runs if run.strategy == "rope" for name in args.scaling_list()]
    for run, scaling in evaluations:
        strategy_rows, strategy_notes = evaluate_strategy(args, run, held_out, lengths, protocols, scaling)
        rows += strategy_rows
        notes += strategy_notes
    seconds = time.perf_counter() - started
    files = {
        "results": output_dir / "results.csv",
        "extrapolation": output_dir / "extrapolation.png",
        "training_curves": output_dir / "training_curves.png",
        "attention": output_dir / "attention.png",
        "report": output_dir / "report.md",
    }
    write_csv(rows, files["results"])
    plot_extrapolation(rows, protocols, args.max_length, files["extrapolation"])
    plot_training_curves(runs, files["training_curves"])
    plot_strategy_attention(runs, args.attention_text, files["attention"])
    write_report(args, runs, rows, notes, lengths, protocols, seconds, files["report"])
    return CompareResult(output_dir, rows, notes, runs, seconds, files)


__all__ = [
    "CompareArguments",
    "CompareResult",
    "attention_weights",
    "compare",
    "plot_attention",
    "stdlib_corpus",
]
