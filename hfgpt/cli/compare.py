"""``hfgpt compare``: train one model per positional strategy on the same budget and compare extrapolation."""

from __future__ import annotations

import argparse
from dataclasses import fields

from hfgpt.cli.options import add_dataclass_arguments, dataclass_from_namespace
from hfgpt.compare.arguments import (
    COMPARE_DEFAULTS,
    GPU_PAPER_DEFAULTS,
    MODE_FIELDS,
    PER_STRATEGY,
    TASK_DEFAULTS,
    CompareOptions,
    Comparison,
)
from hfgpt.training.arguments import TrainArguments

HELP = "train one model per positional strategy and compare how they extrapolate past the training length"
DESCRIPTION = """\
Train one model per positional strategy (--strategies, built-in or from installed plugins) with identical
data, data order, seed, size and number of steps, into OUTPUT_DIR/<strategy>/, then score held-out text at
every evaluation length (default L, 2L, 4L, 8L for the training length L = --max-length) with two
protocols: non-overlapping windows, and sliding windows every --sliding-stride tokens (default L/2) that
score only their new tokens. A strategy that cannot encode a length (`learned` past its context length,
which defaults to L) is reported as such. The training options are `hfgpt train`'s, with other defaults.

Writes OUTPUT_DIR/results.csv (strategy, eval_length, protocol, loss, perplexity, seed, task, accuracy),
extrapolation.png, training_curves.png, attention.png (the last layer's attention per strategy) and
report.md (tables, settings, wall time and the ALiBi paper's numbers beside them).

--task copy|reverse|addition|passkey compares length generalization on a synthetic task instead: every
strategy trains on generated examples of up to L tokens (loss on the answer only) and is scored by
exact-match accuracy of its greedy answer at L, 1.5L, 2L, 3L and 4L (accuracy.png; `learned`: n/a past L).

--seeds N trains every strategy N times (seeds --seed, --seed + 1, ...: other initialisation and data
order, the same held-out split) into OUTPUT_DIR/seed-<seed>/<strategy>/; the report gives the mean and a
95% confidence interval per strategy and length, and marks which pairwise differences a paired t-test
across seeds finds significant.

--gpu-paper runs the ALiBi paper's comparison (sinusoidal, rope, t5, alibi at L = 512, evaluated at 512,
1012, 2512 and 4512 tokens) at a size meant for one H100/H200 in about 20 minutes, its table beside the
paper's.

Rerun with the same OUTPUT_DIR to reuse the strategies already trained (an interrupted one resumes from its
checkpoint); changing the training settings there is refused. The defaults (the standard library's *.py
modules, a BPE tokenizer of 2,048 tokens, 3 layers x 128, L = 64, 1,500 steps of 4 windows) take 4
minutes on an idle 2-core CPU for six strategies (the built-ins, alibi and t5). --rope-scalings
linear,ntk,yarn adds the trained rope model stretched to each evaluation length.
"""


def _mode_help(name: str, what: str) -> str:
    def show(value) -> str:
        return f"{value:g}" if isinstance(value, float) else str(value)

    return (
        f"{what} (default: {show(COMPARE_DEFAULTS[name])}; {show(TASK_DEFAULTS[name])} with --task; "
        f"{show(GPU_PAPER_DEFAULTS[name])} with --gpu-paper)"
    )


HELPS = {
    "corpus": "text files, folders, globs or datasets as for `hfgpt train` (default: the *.py modules of "
    "Python's standard library, about 5 MB, on every machine; with --gpu-paper every *.py under it but "
    "site-packages, about 31 MB)",
    "position_options": "options of the compared strategies as a JSON object of objects, one per strategy, e.g. "
    '\'{"rope": {"theta": 500000}}\'',
    "context_length": "context length, what `learned` can encode (default: the training length L)",
    "tokenizer": "tokenizer strategy (see `hfgpt plugins`) (default: bpe; gpt2-bpe with --gpu-paper; --task uses "
    "a vocabulary of its own symbols)",
    "max_length": _mode_help(
        "max_length", "the training length L: tokens per training window or task example"
    ),
    "preset": _mode_help("preset", "size preset"),
    "max_steps": _mode_help("max_steps", "optimizer steps per strategy"),
    "batch_size": _mode_help("batch_size", "windows (task examples) per step and device"),
    "learning_rate": _mode_help("learning_rate", "peak learning rate (AdamW, cosine decay)"),
    "eval_every": _mode_help("eval_every", "log and validate every N steps"),
    "max_eval_tokens": _mode_help("max_eval_tokens", "validate on at most this many held-out tokens"),
    "eval_batch_size": _mode_help(
        "eval_batch_size", "windows (task examples) per validation step and device"
    ),
    "mixed_precision": _mode_help("mixed_precision", "autocast precision on a GPU"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_dataclass_arguments(parser, CompareOptions)
    # mode-dependent fields stay None until the mode is known (`Comparison.from_given`)
    defaults = {**COMPARE_DEFAULTS, **dict.fromkeys(MODE_FIELDS)}
    add_dataclass_arguments(parser, TrainArguments, defaults, exclude=PER_STRATEGY, helps=HELPS)


def comparison_from(args: argparse.Namespace) -> Comparison:
    options = dataclass_from_namespace(CompareOptions, args)
    names = [f.name for f in fields(TrainArguments) if f.name not in PER_STRATEGY and hasattr(args, f.name)]
    train_values = {name: getattr(args, name) for name in names}
    return Comparison.from_given(train_values, options)


def run(args: argparse.Namespace) -> int:
    from hfgpt.cli.paths import check_output_dir
    from hfgpt.compare import compare
    from hfgpt.quiet import quiet

    comparison = comparison_from(args)
    check_output_dir(comparison.options.output_dir, "--output-dir")
    with quiet(not comparison.train.show_progress):  # the evaluation too, not only the training runs
        result = compare(comparison)
    print(f"{len(result.rows)} results in {result.files['results']}; report: {result.files['report']}")
    for note in result.notes:
        print(f"note: {note}")
    print(f"wall time {result.seconds:.0f} s")
    return 0
