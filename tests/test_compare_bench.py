"""`benchmarks/bench_compare.py --quick` for the task and GPU-paper comparisons: each runs end to end and prints
its targets (the default comparison's smoke run is in tests/test_benchmarks.py)."""

import pytest

from tests.test_benchmarks import run_benchmark

pytestmark = pytest.mark.slow  # a subprocess that trains several tiny models


def test_bench_compare_quick_task_prints_accuracy_and_targets():
    out = run_benchmark("bench_compare.py", "--quick", "--task", "copy", "--strategies", "learned,rope")
    assert "`hfgpt compare --strategies learned,rope --task copy` (quick)" in out
    assert "| strategy | 16 (1L) | 24 (1.5L) | 32 (2L) | 48 (3L) | 64 (4L) |" in out
    assert "| learned absent beyond L | rows beyond L: none | yes |" in out
    assert "| some strategy right on most examples at L |" in out


def test_bench_compare_quick_gpu_paper_checks_the_papers_spread():
    out = run_benchmark("bench_compare.py", "--quick", "--gpu-paper")
    assert "`hfgpt compare --strategies sinusoidal,rope,t5,alibi --gpu-paper` (quick)" in out
    assert "| every strategy at L within 5% of the best |" in out
    assert "| alibi at 8.81L within 5% of L |" in out  # 141 / 16: the paper's 4512 / 512
