"""Preparing a corpus for `hfgpt train` costs disk, not memory: 4x the text raises peak RSS by < 100 MB."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]  # the checkout: children import tests.helpers from it

CHILD = textwrap.dedent(
    """
    import json, sys, threading, time
    import torch, transformers, datasets  # imported before the baseline: code, not data
    from hfgpt.training.arguments import TrainArguments
    from hfgpt.training.pretraining import prepare

    from tests.helpers.memory import rss_anon_kib  # run from the checkout's root, like the tests

    peak, done = [0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], rss_anon_kib())
            time.sleep(0.005)

    args = TrainArguments(corpus=[sys.argv[1]], output_dir=sys.argv[2], show_progress=False, val_fraction=0.05)
    baseline = rss_anon_kib()
    threading.Thread(target=sample, daemon=True).start()
    data = prepare(args)
    done.set()
    print(json.dumps({"baseline_kib": baseline, "peak_kib": max(peak[0], rss_anon_kib()),
                      "windows": len(data.train_set) + len(data.val_set)}))
    """
)


def write_corpus(folder, n_files: int, seed: int, words: tuple[int, int] = (180_000, 180_001)) -> int:
    """`n_files` files of English-like words, `words` (low, high) per file (~1 MB at the default); returns bytes."""
    rng = np.random.default_rng(seed)
    letters = np.array(list("etaoinshrdlucmfwypvbgkjqxz"))
    vocabulary = ["".join(rng.choice(letters, size=rng.integers(1, 9))) for _ in range(4000)]
    folder.mkdir()
    total = 0
    for i in range(n_files):
        text = " ".join(rng.choice(vocabulary, size=int(rng.integers(*words)))) + ".\n"
        (folder / f"part{i:05}.txt").write_text(text)
        total += len(text)
    return total


@pytest.mark.slow
def test_preparing_four_times_the_corpus_costs_less_than_100_mb_more(tmp_path):
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "HF_DATASETS_CACHE": str(tmp_path / "cache"),
    }
    report = {}
    for scale in (1, 4):
        folder = tmp_path / f"corpus{scale}"
        size = write_corpus(folder, 30 * scale, seed=scale)
        done = subprocess.run(
            [sys.executable, "-c", CHILD, str(folder), str(tmp_path / f"out{scale}")],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=900,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        report[scale] = {**json.loads(done.stdout.strip().splitlines()[-1]), "bytes": size}
    growth = {s: (r["peak_kib"] - r["baseline_kib"]) / 1024 for s, r in report.items()}
    print(f"\n{report[1]['bytes'] / 1e6:.0f} MB -> +{growth[1]:.0f} MiB, {report[4]['bytes'] / 1e6:.0f} MB -> "
          f"+{growth[4]:.0f} MiB peak anonymous RSS")  # fmt: skip
    assert report[4]["windows"] > 3.5 * report[1]["windows"]
    assert growth[4] - growth[1] < 100


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/<pid>/status")
def test_many_small_documents_four_times_over_cost_less_than_100_mb_more_for_train_and_eval(tmp_path):
    """1,500 vs 6,000 documents: per-document bookkeeping (file-backed, 16 bytes a document) must not grow the
    commands' memory with the number of documents."""
    from tests.helpers.memory import hfgpt_command, peak_rss_anon_mib

    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "HF_DATASETS_CACHE": str(tmp_path / "c"),
    }
    peaks = {}
    for n in (1500, 6000):
        corpus = tmp_path / f"docs{n}"
        write_corpus(corpus, n, seed=n, words=(400, 1200))  # 2 to 6 kB: source files, web pages
        model = tmp_path / f"model{n}"
        train = [
            *hfgpt_command(),
            "train",
            str(corpus),
            "--preset",
            "tiny",
            "--max-steps",
            "1",
            "--no-progress",
        ]
        train += ["--max-eval-tokens", "4096", "--output-dir", str(model)]
        peak_train, done = peak_rss_anon_mib(train, env)
        assert done.returncode == 0, done.stderr[-3000:]
        evaluate = [
            *hfgpt_command(),
            "eval",
            str(model),
            str(corpus),
            "--lengths",
            "64",
            "--max-tokens",
            "4096",
        ]
        peak_eval, done = peak_rss_anon_mib([*evaluate, "--no-progress", "--json"], env)
        assert done.returncode == 0, done.stderr[-3000:]
        peaks[n] = (peak_train, peak_eval)
    print(
        f"\npeak anonymous RSS (train, eval): 1,500 documents {peaks[1500]}, 6,000 documents {peaks[6000]} MiB"
    )
    assert peaks[6000][0] - peaks[1500][0] < 100
    assert peaks[6000][1] - peaks[1500][1] < 100
