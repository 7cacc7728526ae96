"""Sliding-window samples: `hfgpt.data.window` vs the classic per-window `torch.tensor` loop.

Corpus: the Python standard library's .py files, tokenized once with tiktoken's gpt2 encoding (~15M tokens;
the token arrays are cached in the system temp dir). Measured side by side in one run, `--repeats` interleaved passes:

    naive   the classic GPTDatasetV1 loop over the joined token list: one `torch.tensor` per input and target
    window  `hfgpt.data.window(dataset, max_length=256, stride=128)` on an in-memory `datasets.Dataset` whose
            `input_ids` column holds one tokenized file per row (no separator, so the windows are the naive
            loop's; this is checked window by window)
    e2e     `hfgpt.data.window(list_of_texts, tokenizer=GPT2BPETokenizer())` from raw text, split into
            tokenization and windowing time

    python benchmarks/bench_data.py            # whole corpus (~31 MB, ~15M tokens)
    python benchmarks/bench_data.py --quick    # smoke run (~2 MB, 1 pass)
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import logging
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_tokenizers import corpus_mb, load_corpus, stdlib_files, tiktoken_gpt2  # noqa: E402

CACHE_ROOT = Path(tempfile.gettempdir()) / "hfgpt-bench-tokens"


def cached_tokens(texts: list[str], max_mb: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Every file's tiktoken gpt2 ids as one flat int32 array plus per-file lengths, cached on disk."""
    files = stdlib_files()
    key = hashlib.sha256(
        repr((max_mb, len(texts), [(str(p), p.stat().st_size) for p in files])).encode()
    ).hexdigest()[:16]
    folder = CACHE_ROOT / key
    if (folder / "lengths.npy").exists():
        return np.load(folder / "tokens.npy"), np.load(folder / "lengths.npy")
    enc = tiktoken_gpt2()
    ids = [enc.encode_ordinary(t) for t in texts]
    tokens = np.fromiter((i for doc in ids for i in doc), dtype=np.int32, count=sum(map(len, ids)))
    lengths = np.asarray([len(doc) for doc in ids], dtype=np.int64)
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "tokens.npy", tokens)
    np.save(folder / "lengths.npy", lengths)
    return tokens, lengths


def tokenized_dataset(tokens: np.ndarray, lengths: np.ndarray):
    """An in-memory `datasets.Dataset` with an int64 `input_ids` column, one row per file."""
    import pyarrow as pa
    from datasets import Dataset

    offsets = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
    column = pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(tokens.astype(np.int64)))
    column = column.cast(pa.list_(pa.int64()))
    return Dataset(pa.table({"input_ids": column}))


def naive_windows(ids: list[int], max_length: int, stride: int):
    """The classic GPTDatasetV1 loop."""
    inputs, targets = [], []
    for i in range(0, len(ids) - max_length, stride):
        inputs.append(torch.tensor(ids[i : i + max_length]))
        targets.append(torch.tensor(ids[i + 1 : i + max_length + 1]))
    return inputs, targets


def timed(fn):
    """Seconds fn takes, starting from a quiet machine state.

    `window()` writes its windows (~370 MB here) to a file; dirty pages left by the previous pass would
    throttle this pass's writes, so they are flushed (`os.sync`) before the clock starts, for every method.
    """
    gc.collect()
    os.sync()
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


class CacheHits(logging.Handler):
    """Collects datasets' "Loading cached ..." / "Found cached ..." messages while installed."""

    MARKERS = ("Loading cached", "Found cached")

    def __init__(self):
        super().__init__(logging.INFO)
        self.hits: list[str] = []

    def emit(self, record):
        message = record.getMessage()
        if any(marker in message for marker in self.MARKERS):
            self.hits.append(message)

    def __enter__(self):
        from datasets.utils import logging as ds_logging

        self.root = ds_logging._get_library_root_logger()
        self.root_level = self.root.level
        self.quiet = [(h, h.level) for h in self.root.handlers]
        for handler, _ in self.quiet:  # datasets' own stderr handler keeps printing warnings only
            handler.setLevel(max(handler.level, logging.WARNING))
        self.root.addHandler(self)
        self.root.setLevel(logging.INFO)
        return self

    def __exit__(self, *exc):
        self.root.removeHandler(self)
        self.root.setLevel(self.root_level)
        for handler, level in self.quiet:
            handler.setLevel(level)


class StageTimer:
    """Times hfgpt.data's internal stages by wrapping its helpers for the duration (benchmark-only).

    Helpers that do not exist (the module changed) are skipped; their time lands in "the rest".
    """

    STAGES = ("as_dataset", "tokenize", "stream_of_tokens")

    def __init__(self, module):
        self.module = module
        self.seconds = dict.fromkeys(self.STAGES, 0.0)
        self.originals = {name: getattr(module, name) for name in self.STAGES if hasattr(module, name)}

    def __enter__(self):
        for name, original in self.originals.items():
            setattr(self.module, name, self._wrap(name, original))
        return self

    def _wrap(self, name, original):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - start

        return wrapper

    def __exit__(self, *exc):
        for name, original in self.originals.items():
            setattr(self.module, name, original)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--max-mb", type=float, default=None, help="use at most this many MB of the corpus")
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--stride", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5, help="passes per measurement")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 MB, 1 pass")
    args = parser.parse_args(argv)
    if args.quick:
        args.max_mb, args.repeats = args.max_mb or 2.0, 1
    L, S = args.max_length, args.stride

    import datasets

    import hfgpt
    import hfgpt.data
    import hfgpt.data.windows

    work = Path(tempfile.mkdtemp(prefix="hfgpt-bench-data-"))
    datasets.config.HF_DATASETS_CACHE = work / "datasets"
    try:
        texts = load_corpus(args.max_mb)
        mb = corpus_mb(texts)
        tokens, lengths = cached_tokens(texts, args.max_mb)
        print(f"corpus: {len(texts)} files, {mb:.1f} MB, {len(tokens):,} tokens", flush=True)
        dataset = tokenized_dataset(tokens, lengths)
        ids = tokens.tolist()

        seconds: dict[str, list[float]] = {"naive": [], "window": []}
        windows = None
        for _ in range(args.repeats):
            if windows is not None:
                windows.cleanup_cache_files()  # the previous pass's windows file: no dirty pages left behind
            took, naive = timed(lambda: naive_windows(ids, L, S))
            seconds["naive"].append(took)
            del naive
            took, windows = timed(lambda: hfgpt.data.window(dataset, max_length=L, stride=S))
            seconds["window"].append(took)
            print(f"  naive {seconds['naive'][-1]:.2f}s  window {seconds['window'][-1]:.2f}s", flush=True)
        best = {k: min(v) for k, v in seconds.items()}
        median = {k: float(np.median(v)) for k, v in seconds.items()}

        # The windows must be the naive loop's, one by one.
        inputs, targets = naive_windows(ids, L, S)
        got = windows.with_format("numpy")
        assert len(got) == len(inputs), f"window() made {len(got)} windows, the naive loop {len(inputs)}"
        assert np.array_equal(got["input_ids"], torch.stack(inputs).numpy()), (
            "input_ids differ from the naive loop"
        )
        assert np.array_equal(got["shift_labels"], torch.stack(targets).numpy()), "shift_labels differ"
        n_windows = len(inputs)
        column_type = windows.features["input_ids"].feature.dtype
        del inputs, targets, got, windows
        ids = None  # free the 15M-int list
        gc.collect()

        command = (
            "python benchmarks/bench_data.py"
            + (" " + " ".join(argv if argv is not None else sys.argv[1:])).rstrip()
        )
        rate = {k: n_windows / v for k, v in best.items()}
        ratio = rate["window"] / rate["naive"]
        median_ratio = median["naive"] / median["window"]
        lines = [
            f"Corpus: {len(texts)} stdlib .py files, {mb:.1f} MB, {len(tokens):,} GPT-2 tokens; max_length={L}, "
            f"stride={S}; {n_windows:,} windows. {args.repeats} passes, naive and window interleaved.",
            f"Machine: {os.cpu_count()}-core CPU ({platform.machine()}, load average "
            f"{os.getloadavg()[1]:.1f} over the last 5 min), Python {platform.python_version()}, "
            f"datasets {datasets.__version__}. Command: `{command}`",
            "",
            "| method | best s | median s | windows/s (best) | every pass, s |",
            "|---|---:|---:|---:|---|",
            *(
                f"| {label} | {best[k]:.2f} | {median[k]:.2f} | {rate[k]:,.0f} | "
                f"{', '.join(f'{t:.2f}' for t in seconds[k])} |"
                for k, label in (
                    ("naive", "naive loop, one `torch.tensor` per input and target"),
                    ("window", f"`hfgpt.data.window(tokenized Dataset)` (2 {column_type} columns)"),
                )
            ),
            "",
            f"Ratio window / naive: **{ratio:.1f}×** best vs best, **{median_ratio:.1f}×** median vs median "
            f"(target ≥ 10×: {'met' if min(ratio, median_ratio) >= 10 else '**not met**'}). "
            "Windows checked identical to the naive loop's.",
        ]
        print("\n" + "\n".join(lines), flush=True)
        lines += ["", *end_to_end(hfgpt, datasets, texts, len(tokens), mb, L, S, args.repeats)]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print()
    print("\n".join(lines))


def end_to_end(hfgpt, datasets, texts, n_tokens, mb, L, S, repeats) -> list[str]:
    """window(list_of_texts, tokenizer=GPT2BPETokenizer()), split into its stages."""
    from datasets.fingerprint import Hasher, get_temporary_cache_files_directory

    from hfgpt.data.stream import tokenizer_fingerprint

    tok = hfgpt.GPT2BPETokenizer()
    hash_s, _ = timed(lambda: Hasher.hash(tok))
    fingerprint_s, _ = timed(lambda: tokenizer_fingerprint(tok))
    e2e_best, stages = float("inf"), {}
    for _ in range(repeats):
        with StageTimer(hfgpt.data.windows) as stage, CacheHits() as hits:
            seconds, e2e = timed(lambda: hfgpt.data.window(texts, tokenizer=tok, max_length=L, stride=S))
        assert not hits.hits, f"window() reused a cache: {hits.hits[:2]}"
        print(f"  end-to-end {seconds:.2f}s  stages {stage.seconds}", flush=True)
        if seconds < e2e_best:
            e2e_best, stages = seconds, dict(stage.seconds)
        e2e_windows = len(e2e)
        del e2e
        # in-memory texts: tokens, stream and windows all live in datasets' temporary folder; the stream and
        # windows files are named after the texts and the arguments, so the next pass would reuse them
        for path in Path(get_temporary_cache_files_directory()).iterdir():
            path.unlink()
    rest = e2e_best - sum(stages.values())
    rows = [
        ("source detection (`as_dataset`)", stages.get("as_dataset", 0.0)),
        ("tokenization (`tokenize`: datasets.map + tokenizer)", stages.get("tokenize", 0.0)),
        ("token stream (`stream_of_tokens`)", stages.get("stream_of_tokens", 0.0)),
        ("windowing (the rest: window starts + datasets.map gather)", rest),
    ]
    lines = [
        f"End to end from raw text: `window(list_of_texts, tokenizer=GPT2BPETokenizer())` "
        f"({n_tokens + len(texts) - 1:,} tokens incl. one separator between files, {e2e_windows:,} windows), "
        f"best of {repeats}:",
        "",
    ]
    lines += ["| stage | seconds | share |", "|---|---:|---:|"]
    lines += [f"| {name} | {sec:.2f} | {sec / e2e_best:.0%} |" for name, sec in rows]
    lines += [
        f"| total | {e2e_best:.2f} | {mb / e2e_best:.1f} MB/s of text |",
        "",
        f"(`window()` fingerprints the tokenizer for `datasets.map` with `tokenizer_fingerprint`, {fingerprint_s:.2f} s, "
        f"inside the tokenization stage; datasets' own hashing of it would take {hash_s:.2f} s.)",
    ]
    return lines


if __name__ == "__main__":
    main()
