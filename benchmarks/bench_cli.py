"""Start-up time of the command line: `hfgpt --help` (and `hfgpt train --help`) vs `python -c "import torch"`.

The CLI must answer `--help` without importing torch or transformers. Each pass starts fresh interpreters
for every command back to back (interleaved, so load from other processes hits them alike); per command
the median wall time over `--repeats` passes is reported, with the ratio to `import torch`.

    python benchmarks/bench_cli.py              # 15 passes
    python benchmarks/bench_cli.py --quick      # 3 passes
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "import torch": [sys.executable, "-c", "import torch"],
    "hfgpt --help": [sys.executable, "-m", "hfgpt", "--help"],
    "hfgpt train --help": [sys.executable, "-m", "hfgpt", "train", "--help"],
    "import hfgpt": [sys.executable, "-c", "import hfgpt"],
}
TARGET = 0.3  # hfgpt --help at most 0.3x the time of importing torch


def wall_time(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=15, help="interleaved passes (default: 15)")
    parser.add_argument("--quick", action="store_true", help="3 passes: a smoke run")
    args = parser.parse_args()
    repeats = 3 if args.quick else args.repeats

    for command in COMMANDS.values():  # warm the file cache: the first start of any interpreter is slower
        wall_time(command)
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(repeats):
        for name, command in COMMANDS.items():
            times[name].append(wall_time(command))

    torch_median = statistics.median(times["import torch"])
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"load average {os.getloadavg()[0]:.1f}, {repeats} interleaved passes\n")  # fmt: skip
    print("| command | median s | min s | max s | ratio to `import torch` |")
    print("|---|---:|---:|---:|---:|")
    for name, values in times.items():
        median = statistics.median(values)
        print(
            f"| `{name}` | {median:.3f} | {min(values):.3f} | {max(values):.3f} | {median / torch_median:.2f}× |"
        )
    ratio = statistics.median(times["hfgpt --help"]) / torch_median
    print(
        f"\nhfgpt --help / import torch = {ratio:.2f}x (target <= {TARGET}x: {'met' if ratio <= TARGET else 'NOT met'})"
    )


if __name__ == "__main__":
    main()
