"""Smoke runs of the benchmarks that take minutes or a GPU: each runs end to end and prints its table."""

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


def test_bench_compare_quick_runs_and_checks_the_targets():
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_compare.py"), "--quick"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "`hfgpt compare --strategies learned,rope,alibi` (quick)" in done.stdout
    # learned's 16 positions cannot encode 32..128 tokens: whatever a 30-step model learns, it has no rows
    assert "| learned absent beyond L | rows beyond L: none | yes |" in done.stdout
    assert "| every strategy at L within 15% of the best |" in done.stdout
