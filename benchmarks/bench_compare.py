"""`hfgpt compare` as a user runs it: its wall time and whether its results show the known picture.

Runs `hfgpt compare` in a fresh output directory (or `--keep DIR`), timing the whole command and its peak
memory, then checks its targets from `results.csv`. Three comparisons:

* the default (text; target: at most 10 minutes on an idle 2-core CPU): every strategy's perplexity at L within
  15% of the best one's; ALiBi's at 8L within 5% of its own at L; RoPE's at 8L worse than ALiBi's; `learned`
  absent beyond L (non-overlapping windows; with `--seeds N`, on the means over seeds);
* `--task NAME` (target: at most 10 minutes on an idle 2-core CPU): exact-match accuracy per strategy and
  length; `learned` absent beyond L; some strategy right on most examples at L (it learned the task);
* `--gpu-paper` (target: at most 20 minutes on one H100/H200): the ALiBi paper's four strategies within 5% of
  each other at L, as in its Table 2 (19.65-20.07), and ALiBi at ~8.8L within 5% of its L.

    python benchmarks/bench_compare.py                       # the default comparison (minutes)
    python benchmarks/bench_compare.py --seeds 3 --keep DIR  # three seeds: means and 95% intervals
    python benchmarks/bench_compare.py --task copy           # length generalization on the copy task
    python benchmarks/bench_compare.py --gpu-paper           # on one large GPU
    python benchmarks/bench_compare.py --quick [--task copy | --gpu-paper]  # smoke run: tiny settings, seconds
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_model  # noqa: E402

TIME_LIMIT_S = {"text": 600, "task": 600, "gpu-paper": 1200}
QUICK = [
    "--preset",
    "tiny",
    "--tokenizer",
    "regex",
    "--max-length",
    "16",
    "--max-steps",
    "30",
    "--eval-tokens",
    "600",
]
QUICK_TASK = ["--preset", "tiny", "--max-length", "16", "--max-steps", "30", "--task-examples", "32"]
QUICK_GPU = [*QUICK, "--mixed-precision", "no", "--protocols", "non-overlapping"]


def run_compare(output_dir: Path, extra: list[str]) -> tuple[float, float, float]:
    """Run `hfgpt compare` in a child process: (wall seconds, the child's peak RSS in GiB, its CPU seconds).

    The CPU seconds (user + system) do not grow with the machine's load the way the wall time does: on a busy
    machine they tell roughly what the wall time would be on an idle one with that many cores busy."""
    command = [
        sys.executable,
        "-m",
        "hfgpt",
        "compare",
        "--output-dir",
        str(output_dir),
        "--no-progress",
        *extra,
    ]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    seconds = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"hfgpt compare failed ({done.returncode}):\n{done.stderr[-3000:]}")
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return seconds, usage.ru_maxrss / 2**20, usage.ru_utime + usage.ru_stime


def read_means(path: Path, metric: str) -> dict[tuple[str, int, str], float]:
    """`{(strategy, length, protocol): mean over seeds}` of `metric` from results.csv."""
    values = defaultdict(list)
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            values[r["strategy"], int(r["eval_length"]), r["protocol"]].append(float(r[metric]))
    return {key: math.fsum(v) / len(v) for key, v in values.items()}


def checks(
    ppl: dict[tuple[str, int, str], float], strategies: list[str], length: int, spread: float = 1.15
) -> list[tuple[str, str, bool]]:
    """(target, measured, met) for each of the comparison's targets, on non-overlapping windows."""
    at = lambda s, n: ppl.get((s, n, "non-overlapping"))  # noqa: E731
    longest = max(n for (_, n, _) in ppl)
    factor = f"{longest / length:.3g}L"
    rows = []
    at_l = {s: at(s, length) for s in strategies if at(s, length) is not None}
    best = min(at_l.values())
    worst = max(at_l, key=at_l.get)
    rows.append((f"every strategy at L within {spread - 1:.0%} of the best",
                 f"worst {worst} {at_l[worst]:.2f} = {at_l[worst] / best:.3f}x best {best:.2f}",
                 at_l[worst] <= spread * best))  # fmt: skip
    if "alibi" in strategies:
        ratio = at("alibi", longest) / at("alibi", length)
        rows.append((f"alibi at {factor} within 5% of L", f"{ratio:.3f}x", abs(ratio - 1) <= 0.05))
    if "alibi" in strategies and "rope" in strategies:
        rope, alibi = at("rope", longest), at("alibi", longest)
        rows.append(
            (f"rope at {factor} worse than alibi", f"rope {rope:.1f} vs alibi {alibi:.1f}", rope > alibi)
        )
    if "learned" in strategies:
        beyond = sorted({n for (s, n, _) in ppl if s == "learned" and n > length})
        rows.append(("learned absent beyond L", f"rows beyond L: {beyond or 'none'}", not beyond))
    return rows


def task_checks(accuracy: dict[tuple[str, int, str], float], strategies: list[str], length: int):
    at_l = {
        s: accuracy[s, length, "exact-match"] for s in strategies if (s, length, "exact-match") in accuracy
    }
    best = max(at_l, key=at_l.get)
    rows = [("some strategy right on most examples at L", f"{best} {at_l[best]:.1%}", at_l[best] > 0.5)]
    if "learned" in strategies:
        beyond = sorted({n for (s, n, _) in accuracy if s == "learned" and n > length})
        rows.append(("learned absent beyond L", f"rows beyond L: {beyond or 'none'}", not beyond))
    return rows


def accuracy_table(
    accuracy: dict[tuple[str, int, str], float], strategies: list[str], length: int
) -> list[str]:
    lengths = sorted({n for (_, n, _) in accuracy})
    lines = ["| strategy | " + " | ".join(f"{n} ({n / length:g}L)" for n in lengths) + " |"]
    lines.append("|---" + "|---:" * len(lengths) + "|")
    for s in strategies:
        cells = [
            f"{accuracy[s, n, 'exact-match']:.1%}" if (s, n, "exact-match") in accuracy else "n/a"
            for n in lengths
        ]
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--strategies", help="strategies to compare (default: the comparison's)")
    parser.add_argument("--task", help="compare on a synthetic task (copy, reverse, addition, passkey)")
    parser.add_argument(
        "--gpu-paper", action="store_true", help="the ALiBi paper's comparison on one large GPU"
    )
    parser.add_argument("--seeds", type=int, default=1, help="seeds per strategy (means are checked)")
    parser.add_argument("--keep", metavar="DIR", help="write the comparison here and keep it")
    parser.add_argument("--quick", action="store_true", help="smoke run on tiny settings (seconds)")
    args = parser.parse_args()

    mode = "task" if args.task else "gpu-paper" if args.gpu_paper else "text"
    extra = ["--seeds", str(args.seeds)]
    if args.task:
        extra += ["--task", args.task, *(QUICK_TASK if args.quick else [])]
    elif args.gpu_paper:
        extra += ["--gpu-paper"]
    if args.quick and not args.task:
        from hfgpt.data.sources import default_corpus_path

        extra += [str(default_corpus_path()), *(QUICK_GPU if args.gpu_paper else QUICK)]
    if args.strategies or (args.quick and mode == "text"):
        strategies = args.strategies or "learned,rope,alibi"
        extra += ["--strategies", strategies]
    elif args.gpu_paper:
        strategies = "sinusoidal,rope,t5,alibi"
    else:
        from hfgpt.compare.arguments import default_strategies

        strategies = ",".join(default_strategies())
    scratch = None if args.keep else Path(tempfile.mkdtemp(prefix="hfgpt-bench-compare-"))
    output_dir = Path(args.keep) if args.keep else scratch / "compare"
    try:
        load_before = os.getloadavg()
        seconds, peak_gib, cpu_seconds = run_compare(output_dir, extra)
        load_after = os.getloadavg()
        values = read_means(output_dir / "results.csv", "accuracy" if args.task else "perplexity")
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)

    length = 16 if args.quick else {"text": 64, "task": 32, "gpu-paper": 512}[mode]
    names = strategies.split(",")
    device = "CPU"
    try:
        import torch

        if torch.cuda.is_available():
            device = torch.cuda.get_device_name()
    except ImportError:
        pass
    print(f"{cpu_model()}, {os.cpu_count()} cores, {device}, Python {platform.python_version()}, "
          f"{time.strftime('%Y-%m-%d %H:%M')}, load average {load_before[0]:.2f} before, {load_after[0]:.2f} after\n")  # fmt: skip
    given = "".join(f" {flag}" for flag, on in ((f"--task {args.task}", args.task), ("--gpu-paper", args.gpu_paper),
                                                   (f"--seeds {args.seeds}", args.seeds > 1)) if on)  # fmt: skip
    print(f"`hfgpt compare --strategies {strategies}{given}`{' (quick)' if args.quick else ''}: "
          f"{seconds:.0f} s wall ({seconds / 60:.1f} min), {cpu_seconds:.0f} s of CPU time "
          f"({os.environ.get('OMP_NUM_THREADS', 'default')} torch threads), peak memory {peak_gib:.2f} GiB\n")  # fmt: skip
    if args.task:
        print("\n".join(accuracy_table(values, names, length)) + "\n")
    print("| target | measured | met |")
    print("|---|---|---|")
    if not args.quick:
        limit = TIME_LIMIT_S[mode]
        print(f"| wall time at most {limit // 60} minutes | {seconds / 60:.1f} min | "
              f"{'yes' if seconds <= limit else 'no'} |")  # fmt: skip
    found = (
        task_checks(values, names, length)
        if args.task
        else checks(values, names, length, spread=1.05 if args.gpu_paper else 1.15)
    )
    for target, measured, met in found:
        print(f"| {target} | {measured} | {'yes' if met else 'no'} |")


if __name__ == "__main__":
    main()
