"""What the positional hooks cost the strategies that do not use them: the model body's forward in this tree
against another revision, in one process, on the CPU.

    python benchmarks/bench_position_hooks.py --before 750c5f5                  # ~4 min on a 2-core CPU
    python benchmarks/bench_position_hooks.py --before 750c5f5 --preset tiny --seq 8 --rounds 200
    python benchmarks/bench_position_hooks.py --before 750c5f5 --quick

The other revision's `hfgpt` package is unpacked with `git archive` and renamed `hfgpt_before` (its imports
rewritten), so both models live in one interpreter, get the same weights (asserted: identical outputs) and
alternate forward by forward (ABBA order): on a machine shared with other jobs, whose load moves the time of a
forward by ±20% between processes, paired forwards seconds apart are what can show a difference of a few
percent. Third-party plugins are not loaded (`HFGPT_DISABLE_PLUGIN_AUTOLOAD=1`): the built-ins are measured.
Default shape: GPT-2's (12 layers, 768 wide, 12 heads), seq 256, batch 1, one thread.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def unpack_renamed(revision: str, into: Path) -> None:
    """`hfgpt/` of `revision` as the package `hfgpt_before` in `into`."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", revision, "hfgpt"], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    package = into / "hfgpt_before"
    (into / "hfgpt").rename(package)
    for path in package.rglob("*.py"):
        source = path.read_text()
        source = re.sub(r"\bhfgpt\.(?=[a-z_])", "hfgpt_before.", source)
        source = re.sub(r"\bfrom hfgpt import\b", "from hfgpt_before import", source)
        path.write_text(source)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--before", required=True, help="git revision to compare with (e.g. main)")
    parser.add_argument("--strategies", default="learned,rope", help="comma-separated built-in strategies")
    parser.add_argument("--attn", default="sdpa,eager", help="comma-separated attention implementations")
    parser.add_argument("--preset", default="gpt2")
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=15, help="timed forwards of each tree")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="a smoke run: the tiny preset, seq 16, 3 rounds")
    args = parser.parse_args()
    if args.quick:
        args.preset, args.seq, args.rounds = "tiny", 16, 3

    os.environ["HFGPT_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    torch_threads = args.threads
    with tempfile.TemporaryDirectory() as scratch:
        unpack_renamed(args.before, Path(scratch))
        sys.path[:0] = [scratch, str(ROOT)]
        import hfgpt_before.modeling_hfgpt as before
        import torch

        import hfgpt.modeling_hfgpt as after

        assert after.__file__.startswith(str(ROOT)) and before.__file__.startswith(scratch)
        torch.set_num_threads(torch_threads)
        print(
            f"CPU: {cpu_model()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start; torch "
            f"threads {torch_threads}; {args.preset} preset, seq {args.seq}, batch 1; before = {args.before}\n"
        )
        print(
            "| strategy | attn | before (ms) | after (ms) | after / before | paired ratios: median [min, max] |"
        )
        print("|---|---|---:|---:|---:|---|")
        for strategy in args.strategies.split(","):
            for attn in args.attn.split(","):
                models = {}
                for name, module in (("before", before), ("after", after)):
                    torch.manual_seed(0)
                    config = module.HFGPTConfig.from_preset(
                        args.preset, position_encoding=strategy, drop_rate=0.0
                    )
                    models[name] = module.HFGPTModel._from_config(config, attn_implementation=attn).eval()
                models["after"].load_state_dict(models["before"].state_dict())
                ids = torch.randint(0, models["after"].config.vocab_size, (1, args.seq))
                times: dict[str, list[float]] = {"before": [], "after": []}
                with torch.inference_mode():
                    outputs = [models[name](ids).last_hidden_state for name in ("before", "after")]
                    assert torch.equal(*outputs), "the two trees compute different outputs"
                    for round_ in range(args.rounds):
                        for name in ("before", "after") if round_ % 2 == 0 else ("after", "before"):
                            start = time.perf_counter()
                            models[name](ids)
                            times[name].append(time.perf_counter() - start)
                b, a = statistics.median(times["before"]), statistics.median(times["after"])
                ratios = sorted(x / y for x, y in zip(times["after"], times["before"]))
                print(
                    f"| {strategy} | {attn} | {b * 1e3:.2f} | {a * 1e3:.2f} | {a / b:.3f} | "
                    f"{statistics.median(ratios):.3f} [{ratios[0]:.3f}, {ratios[-1]:.3f}] |"
                )
        print(f"\nload average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
