"""hfgpt.data at scale: windowing a ~300 MB token corpus must not hold the corpus (or the windows) in memory.

A tokenized Arrow dataset of 75M int32 tokens is written chunk by chunk, then a fresh subprocess windows it
(max_length=256, stride=256) while a thread samples its anonymous resident memory (RssAnon: heap and numpy
buffers; memory-mapped file pages are page cache the kernel can drop, so they are left out). The peak
growth must stay far below the token bytes, and spot-checked windows must hold the right tokens.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

ROOT = Path(__file__).resolve().parents[2]  # the checkout: children import tests.helpers from it

N_DOCS = 30_000
DOC_LEN = 2_500  # 75M tokens, 300 MB as int32
VOCAB = 50_257
MAX_LENGTH = STRIDE = 256

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")


def token_at(positions: np.ndarray) -> np.ndarray:
    """The token at each stream position: a formula, so any window can be checked without the corpus."""
    return (positions * 7919 + 13) % VOCAB


def write_token_dataset(path: str, docs_per_chunk: int = 1_000) -> None:
    """An Arrow stream file (the format datasets memory-maps) with one `input_ids` list<int32> row per document."""
    schema = pa.schema({"input_ids": pa.list_(pa.int32())})
    offsets = pa.array(np.arange(docs_per_chunk + 1, dtype=np.int32) * DOC_LEN)
    with pa.OSFile(path, "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
        for first_doc in range(0, N_DOCS, docs_per_chunk):
            positions = np.arange(first_doc * DOC_LEN, (first_doc + docs_per_chunk) * DOC_LEN, dtype=np.int64)
            values = pa.array(token_at(positions).astype(np.int32))
            writer.write_batch(pa.record_batch([pa.ListArray.from_arrays(offsets, values)], schema=schema))


CHILD = textwrap.dedent(
    """
    import json, sys, threading, time
    import numpy as np
    import torch  # the windows are read as torch tensors: import it before the baseline, it is no data
    from datasets import Dataset
    from hfgpt.data import window

    from tests.helpers.memory import rss_anon_kib  # run from the checkout's root, like the tests

    peak, done = [0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], rss_anon_kib())
            time.sleep(0.002)

    source = Dataset.from_file(sys.argv[1])
    baseline = rss_anon_kib()
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    windows = window(source, max_length=int(sys.argv[2]), stride=int(sys.argv[3]))
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    peak[0] = max(peak[0], rss_anon_kib())
    picks = np.linspace(0, len(windows) - 1, 25).astype(int).tolist()
    rows = windows.with_format(None).select(picks).to_dict()
    print(json.dumps({
        "baseline_kib": baseline, "peak_kib": peak[0], "seconds": seconds, "n_windows": len(windows),
        "picks": picks, "input_ids": rows["input_ids"], "shift_labels": rows["shift_labels"],
        "cache_files": [f["filename"] for f in windows.cache_files],
    }))
    """
)


@pytest.fixture
def scratch(tmp_path):
    """A tmp dir removed right after the test: it holds ~2 GB (tokens, stream, windows)."""
    yield tmp_path
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_window_peak_memory_stays_far_below_the_corpus(scratch):
    tmp_path = scratch
    source = str(tmp_path / "tokens.arrow")
    write_token_dataset(source)
    n_tokens = N_DOCS * DOC_LEN
    token_bytes = n_tokens * 4
    env = dict(os.environ, HF_DATASETS_CACHE=str(tmp_path / "cache"), HF_DATASETS_DISABLE_PROGRESS_BARS="1")
    result = subprocess.run(
        [sys.executable, "-c", CHILD, source, str(MAX_LENGTH), str(STRIDE)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    growth = (report["peak_kib"] - report["baseline_kib"]) * 1024
    print(
        f"\n{n_tokens:,} tokens ({token_bytes / 2**20:.0f} MiB int32) -> {report['n_windows']:,} windows "
        f"in {report['seconds']:.1f} s; peak anonymous RSS growth {growth / 2**20:.0f} MiB "
        f"({growth / token_bytes:.1%} of the token bytes)"
    )

    # no separator (no tokenizer, no separator_id): the stream is the documents back to back
    assert report["n_windows"] == len(range(0, n_tokens - MAX_LENGTH, STRIDE))
    for index, inputs, targets in zip(report["picks"], report["input_ids"], report["shift_labels"]):
        positions = index * STRIDE + np.arange(MAX_LENGTH + 1)
        expected = token_at(positions).tolist()
        assert inputs == expected[:-1] and targets == expected[1:]
    # the windows live in files on disk (memory-mapped), not in the process's heap
    assert report["cache_files"]
    assert growth < 0.25 * token_bytes  # 6% measured; 96% when streams were written via bytes copies
