"""The default `hfgpt compare`: its wall time (target: at most 10 minutes on an idle 2-core CPU) and whether its
results show the known picture.

Runs `hfgpt compare` with every default (the built-in strategies, and `alibi` and `t5` when their plugins
are installed) in a fresh output directory, as a user would, timing the whole command and
its peak memory; then checks, from `results.csv`:

* every strategy's perplexity at L within 15% of the best one's (non-overlapping windows);
* ALiBi's perplexity at 8L within 5% of its own at L;
* RoPE's perplexity at 8L worse than ALiBi's;
* `learned` absent beyond L (it cannot encode those positions).

    python benchmarks/bench_compare.py                     # the default comparison (minutes)
    python benchmarks/bench_compare.py --keep runs/compare # keep its output directory
    python benchmarks/bench_compare.py --quick             # smoke run: the bundled story, 30 steps, seconds
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_model  # noqa: E402

TIME_LIMIT_S = 600
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


def run_compare(output_dir: Path, strategies: str, extra: list[str]) -> tuple[float, float]:
    """Run `hfgpt compare` in a child process: (wall seconds, the child's peak RSS in GiB)."""
    command = [sys.executable, "-m", "hfgpt", "compare", "--strategies", strategies, "--output-dir",
               str(output_dir), "--no-progress", *extra]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    seconds = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"hfgpt compare failed ({done.returncode}):\n{done.stderr[-3000:]}")
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return seconds, peak_kib / 2**20


def read_results(path: Path) -> dict[tuple[str, int, str], float]:
    with open(path, newline="") as f:
        return {
            (r["strategy"], int(r["eval_length"]), r["protocol"]): float(r["perplexity"])
            for r in csv.DictReader(f)
        }


def checks(
    ppl: dict[tuple[str, int, str], float], strategies: list[str], length: int
) -> list[tuple[str, str, bool]]:
    """(target, measured, met) for each of the comparison's targets, on non-overlapping windows."""
    at = lambda s, n: ppl.get((s, n, "non-overlapping"))  # noqa: E731
    longest = max(n for (_, n, _) in ppl)
    rows = []
    at_l = {s: at(s, length) for s in strategies if at(s, length) is not None}
    best = min(at_l.values())
    worst = max(at_l, key=at_l.get)
    rows.append(("every strategy at L within 15% of the best",
                 f"worst {worst} {at_l[worst]:.1f} = {at_l[worst] / best:.3f}x best {best:.1f}",
                 at_l[worst] <= 1.15 * best))  # fmt: skip
    if "alibi" in strategies:
        ratio = at("alibi", longest) / at("alibi", length)
        rows.append(
            (f"alibi at {longest // length}L within 5% of L", f"{ratio:.3f}x", abs(ratio - 1) <= 0.05)
        )
    if "alibi" in strategies and "rope" in strategies:
        rope, alibi = at("rope", longest), at("alibi", longest)
        rows.append((f"rope at {longest // length}L worse than alibi", f"rope {rope:.1f} vs alibi {alibi:.1f}",
                     rope > alibi))  # fmt: skip
    if "learned" in strategies:
        beyond = sorted({n for (s, n, _) in ppl if s == "learned" and n > length})
        rows.append(("learned absent beyond L", f"rows beyond L: {beyond or 'none'}", not beyond))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--strategies", help="strategies to compare (default: the defaults, + t5 if installed)"
    )
    parser.add_argument("--keep", metavar="DIR", help="write the comparison here and keep it")
    parser.add_argument("--quick", action="store_true", help="smoke run on the bundled story (seconds)")
    args = parser.parse_args()

    if args.strategies or args.quick:
        strategies = args.strategies or "learned,rope,alibi"
    else:
        from hfgpt.compare.arguments import default_strategies

        strategies = ",".join(default_strategies())
    extra = QUICK if args.quick else []
    if args.quick:
        from hfgpt.data.sources import default_corpus_path

        extra = [str(default_corpus_path()), *extra]
    scratch = None if args.keep else Path(tempfile.mkdtemp(prefix="hfgpt-bench-compare-"))
    output_dir = Path(args.keep) if args.keep else scratch / "compare"
    try:
        load_before = os.getloadavg()
        seconds, peak_gib = run_compare(output_dir, strategies, extra)
        load_after = os.getloadavg()
        ppl = read_results(output_dir / "results.csv")
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)

    length = 16 if args.quick else 64
    names = strategies.split(",")
    print(f"{cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"{time.strftime('%Y-%m-%d %H:%M')}, load average {load_before[0]:.2f} before, {load_after[0]:.2f} after\n")  # fmt: skip
    print(f"`hfgpt compare --strategies {strategies}`{' (quick)' if args.quick else ''}: "
          f"{seconds:.0f} s wall ({seconds / 60:.1f} min), peak memory {peak_gib:.2f} GiB\n")  # fmt: skip
    print("| target | measured | met |")
    print("|---|---|---|")
    if not args.quick:
        print(f"| wall time at most {TIME_LIMIT_S // 60} minutes | {seconds / 60:.1f} min | "
              f"{'yes' if seconds <= TIME_LIMIT_S else 'no'} |")  # fmt: skip
    for target, measured, met in checks(ppl, names, length):
        print(f"| {target} | {measured} | {'yes' if met else 'no'} |")


if __name__ == "__main__":
    main()
