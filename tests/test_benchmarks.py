"""Benchmark smoke runs on the CPU: each script runs end to end and prints its tables (no GPU on CI)."""

import json
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


def test_bench_throughput_quick_runs(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    out = tmp_path / "throughput.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_throughput.py"), "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| e2e MB/s, 2 processes / 1 |" in done.stdout
    assert "| `tok(texts)` / tiktoken loop |" in done.stdout
    assert "no datasets cache hit logged" in done.stdout
    result = json.loads(out.read_text())
    assert set(result["ratios"]) == {"e2e_2_over_1", "window_2_over_1", "tok_over_loop"}
    assert [len(runs) for runs in result["e2e"].values()] == [1, 1]
