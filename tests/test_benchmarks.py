"""Benchmark smoke runs on the CPU: each script runs end to end and prints its tables (no GPU on CI)."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_benchmark(script: str, *args: str) -> str:
    """Run `benchmarks/<script> ARGS` with one torch thread; its stdout, after checking it succeeded."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_bench_compare_quick_runs_and_checks_the_targets():
    out = run_benchmark("bench_compare.py", "--quick")
    assert "`hfgpt compare --strategies learned,rope,alibi` (quick)" in out
    # learned's 16 positions cannot encode 32..128 tokens: whatever a 30-step model learns, it has no rows
    assert "| learned absent beyond L | rows beyond L: none | yes |" in out
    assert "| every strategy at L within 15% of the best |" in out


def test_bench_throughput_quick_runs(tmp_path):
    result_file = tmp_path / "throughput.json"
    out = run_benchmark("bench_throughput.py", "--quick", "--json", str(result_file))
    assert "| e2e MB/s, 2 processes / 1 |" in out
    assert "| `tok(texts)` / tiktoken loop |" in out
    assert "no datasets cache hit logged" in out
    result = json.loads(result_file.read_text())
    assert set(result["ratios"]) == {"e2e_2_over_1", "window_2_over_1", "tok_over_loop"}
    assert [len(runs) for runs in result["e2e"].values()] == [1, 1]


def test_bench_gpu_quick_runs_on_cpu(tmp_path):
    out = run_benchmark("bench_gpu.py", "--quick", "--out", str(tmp_path))
    assert "| hfgpt | no |" in out and "| gpt2 | no |" in out
    assert "hfgpt / GPT2LMHeadModel tokens/s:" in out


def test_bench_positions_quick_runs_and_its_two_ropes_agree():
    out = run_benchmark("bench_positions.py", "--quick")  # it asserts the two RoPE variants' logits agree
    assert "rope (tables once per forward) / per-layer rope:" in out
