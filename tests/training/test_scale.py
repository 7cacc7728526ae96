"""Preparing a corpus for `hfgpt train` costs disk, not memory: 4x the text raises peak RSS by < 100 MB."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

CHILD = textwrap.dedent(
    """
    import json, sys, threading, time
    import torch, transformers, datasets  # imported before the baseline: code, not data
    from hfgpt.training.arguments import TrainArguments
    from hfgpt.training.pretraining import prepare

    def rss_anon_kib():
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("RssAnon:"))

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


def write_corpus(folder, n_files: int, seed: int) -> int:
    """`n_files` files of ~1 MB of English-like words; returns the bytes written."""
    rng = np.random.default_rng(seed)
    letters = np.array(list("etaoinshrdlucmfwypvbgkjqxz"))
    words = ["".join(rng.choice(letters, size=rng.integers(1, 9))) for _ in range(4000)]
    folder.mkdir()
    total = 0
    for i in range(n_files):
        text = " ".join(rng.choice(words, size=180_000)) + ".\n"
        (folder / f"part{i:03}.txt").write_text(text)
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
            timeout=900,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        report[scale] = {**json.loads(done.stdout.strip().splitlines()[-1]), "bytes": size}
    growth = {s: (r["peak_kib"] - r["baseline_kib"]) / 1024 for s, r in report.items()}
    print(f"\n{report[1]['bytes'] / 1e6:.0f} MB -> +{growth[1]:.0f} MiB, {report[4]['bytes'] / 1e6:.0f} MB -> "
          f"+{growth[4]:.0f} MiB peak anonymous RSS")  # fmt: skip
    assert report[4]["windows"] > 3.5 * report[1]["windows"]
    assert growth[4] - growth[1] < 100
