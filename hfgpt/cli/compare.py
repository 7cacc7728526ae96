"""``hfgpt compare``: train one model per positional strategy on the same budget and compare extrapolation."""

from __future__ import annotations

import argparse

from hfgpt.cli.options import add_dataclass_arguments, dataclass_from_namespace
from hfgpt.compare.arguments import COMPARE_DEFAULTS, PER_STRATEGY, CompareOptions, Comparison
from hfgpt.training.arguments import TrainArguments

HELP = "train one model per positional strategy and compare how they extrapolate past the training length"
DESCRIPTION = """\
Train one model per positional strategy (--strategies, built-in or from installed plugins) with identical
data, data order, seed, size and number of steps, into OUTPUT_DIR/<strategy>/, then score held-out text at
every evaluation length (default L, 2L, 4L, 8L for the training length L = --max-length) with two
protocols: non-overlapping windows, and sliding windows every --sliding-stride tokens (default L/2) that
score only their new tokens. A strategy that cannot encode a length (`learned` past its context length,
which defaults to L) is reported as such. The training options are `hfgpt train`'s, with other defaults.

Writes OUTPUT_DIR/results.csv (strategy, eval_length, protocol, loss, perplexity), extrapolation.png,
training_curves.png, attention.png (the last layer's attention per strategy) and report.md (tables,
settings, wall time and the ALiBi paper's numbers beside them).

Rerun with the same OUTPUT_DIR to reuse the strategies already trained (an interrupted one resumes from its
checkpoint); changing the training settings there is refused. The defaults (the standard library's *.py
modules, a BPE tokenizer of 2,048 tokens, 3 layers x 128, L = 64, 1,500 steps of 4 windows) take 4
minutes on an idle 2-core CPU for six strategies (the built-ins, alibi and t5). --rope-scalings
linear,ntk,yarn adds the trained rope model stretched to each evaluation length.
"""


HELPS = {
    "corpus": "text files, folders, globs or datasets as for `hfgpt train` (default: the *.py modules of "
    "Python's standard library, about 5 MB, on every machine)",
    "position_options": "options of the compared strategies as a JSON object of objects, one per strategy, e.g. "
    '\'{"rope": {"theta": 500000}}\'',
    "context_length": "context length, what `learned` can encode (default: the training length L)",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_dataclass_arguments(parser, CompareOptions)
    add_dataclass_arguments(parser, TrainArguments, COMPARE_DEFAULTS, exclude=PER_STRATEGY, helps=HELPS)


def comparison_from(args: argparse.Namespace) -> Comparison:
    return Comparison(
        dataclass_from_namespace(TrainArguments, args), dataclass_from_namespace(CompareOptions, args)
    )


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
