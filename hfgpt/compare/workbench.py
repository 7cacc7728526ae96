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
    """Train (or reuse) one model per strategy and seed, evaluate all of them and write the comparison; see the
    package docstring. Every option and strategy name is checked before anything is trained."""
    from hfgpt.compare.taskruns import evaluate_task_strategy, train_task_strategy

    report = report or (lambda message: print(message, file=sys.stderr))
    progress = report if comparison.train.show_progress else (lambda message: None)  # --no-progress
    started = time.perf_counter()
    strategies, lengths, protocols = check_comparison(comparison)
    seeds = comparison.seed_list()
    task = comparison.options.task is not None
    trainer = train_task_strategy if task else train_strategy
    runs = []
    jobs = [(seed, strategy) for seed in seeds for strategy in strategies]
    for index, (seed, strategy) in enumerate(jobs, 1):
        which = f" (seed {seed})" if len(seeds) > 1 else ""
        progress(f"hfgpt compare: [{index}/{len(jobs)}] {strategy}{which}")
        runs.append(trainer(comparison, strategy, report, seed))
        check_settings(comparison.output_dir, comparison.settings(), record=True)
    progress("hfgpt compare: evaluating")
    rows, notes = [], []
    if task:
        for run in runs:
            run_rows, run_notes = evaluate_task_strategy(comparison, run, lengths)
            rows += run_rows
            notes += run_notes
    else:
        source = held_out(comparison)
        evaluations = [(run, None) for run in runs]
        evaluations += [
            (run, name) for run in runs if run.strategy == "rope" for name in comparison.scaling_list()
        ]
        for run, scaling in evaluations:
            run_rows, run_notes = evaluate_strategy(comparison, run, source, lengths, protocols, scaling)
            rows += run_rows
            notes += run_notes
    notes = list(dict.fromkeys(notes))  # every seed notes the same lengths
    seconds = time.perf_counter() - started
    files = write_all(comparison, runs, rows, notes, lengths, protocols, seconds)
    return CompareResult(comparison.output_dir, rows, notes, runs, seconds, files)


__all__ = ["CompareResult", "compare"]
