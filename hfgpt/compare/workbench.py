"""`compare()`: the whole comparison, from options to files (see the package docstring)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from hfgpt.compare.arguments import Comparison
from hfgpt.compare.report import write_all
from hfgpt.compare.runs import (
    Row,
    StrategyRun,
    check_comparison,
    check_settings,
    evaluate_strategy,
    held_out,
    train_strategy,
)


@dataclass
class CompareResult:
    output_dir: Path
    rows: list[Row]
    notes: list[str]
    runs: list[StrategyRun]
    seconds: float
    files: dict[str, Path] = field(default_factory=dict)


def compare(comparison: Comparison, report: Callable[[str], None] | None = None) -> CompareResult:
    """Train (or reuse) one model per strategy, evaluate all of them and write the comparison; see the package
    docstring. Every option and strategy name is checked before anything is trained."""
    report = report or (lambda message: print(message, file=sys.stderr))
    progress = report if comparison.train.show_progress else (lambda message: None)  # --no-progress
    started = time.perf_counter()
    strategies, lengths, protocols = check_comparison(comparison)
    output_dir = Path(comparison.options.output_dir)
    runs = []
    for index, strategy in enumerate(strategies, 1):
        progress(f"hfgpt compare: [{index}/{len(strategies)}] {strategy}")
        runs.append(train_strategy(comparison, strategy, report))
        check_settings(output_dir, comparison.settings(), record=True)
    progress("hfgpt compare: evaluating")
    source = held_out(comparison)
    rows, notes = [], []
    evaluations = [(run, None) for run in runs]
    evaluations += [
        (run, name) for run in runs if run.strategy == "rope" for name in comparison.scaling_list()
    ]
    for run, scaling in evaluations:
        strategy_rows, strategy_notes = evaluate_strategy(
            comparison, run, source, lengths, protocols, scaling
        )
        rows += strategy_rows
        notes += strategy_notes
    seconds = time.perf_counter() - started
    files = write_all(comparison, runs, rows, notes, lengths, protocols, seconds)
    return CompareResult(output_dir, rows, notes, runs, seconds, files)


__all__ = ["CompareResult", "compare"]
