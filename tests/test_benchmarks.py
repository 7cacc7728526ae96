"""The GPU benchmark's CPU smoke run: the script runs end to end and prints its table (no GPU on CI)."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_gpu_quick_runs_on_cpu(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_gpu.py"), "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| hfgpt | no |" in done.stdout and "| gpt2 | no |" in done.stdout
    assert "hfgpt / GPT2LMHeadModel tokens/s:" in done.stdout
