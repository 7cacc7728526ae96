"""Data throughput: corpus files -> windows with 1 and 2 processes, `tok(texts)` vs tiktoken, the fingerprint.

Corpus: the standard library's .py files (`bench_tokenizers.stdlib_files`). Every measurement is interleaved
pass by pass (the order of the compared runs alternates), and the median of `--repeats` passes is reported:

    e2e   `hfgpt.data.sources.load_corpus(files, skip_bad_files=True, cache_dir=<fresh>)`, then
          `window(corpus, tokenizer=GPT2BPETokenizer(), max_length=256, stride=256, num_proc=N)`, N = 1 and 2:
          MB of corpus text per second, split into its stages. Every run gets an empty datasets cache folder;
          the benchmark asserts that datasets logged no cache hit and that every file the windows live in is
          inside that run's folder, and that all runs made the same windows.
    tok   `GPT2BPETokenizer()(batch)["input_ids"]` on batches of 64 files vs a plain loop of tiktoken's
          `encode_ordinary` over the same texts, chunk by chunk; ids asserted equal.
    fp    the fixed cost of fingerprinting the tokenizer for `datasets.map`: `window()`'s
          `tokenizer_fingerprint(tok)` vs datasets' own `Hasher.hash(tok)`, and the time `window()` spends in
          datasets' Hasher at all.

    python benchmarks/bench_throughput.py            # whole corpus (~31 MB), 5 passes
    python benchmarks/bench_throughput.py --quick    # smoke run (~2 MB, 1 pass)
    python benchmarks/bench_throughput.py --json out.json

Targets: e2e 2 processes >= 1.6x one; tok >= 0.9x the tiktoken loop. The machine is described from
/proc/cpuinfo, `os.sched_getaffinity`, the load average before and after, and the CPU time other processes
used during the run (from /proc/stat), since a process count can only scale with the cores it gets.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_data import CacheHits, StageTimer, timed  # noqa: E402
from bench_tokenizers import (  # noqa: E402
    BATCH,
    batched,
    check_ids,
    corpus_mb,
    load_corpus,
    stdlib_files,
    tiktoken_gpt2,
)
from machine import cpu_model  # noqa: E402

MAX_LENGTH = STRIDE = 256
PROCS = (1, 2)
TARGET_SCALING, TARGET_TOK = 1.6, 0.9


# --- the machine ------------------------------------------------------------------------------------------
class CpuMeter:
    """CPU seconds used on the whole machine (/proc/stat) and by this process and its reaped children."""

    def __init__(self):
        self.start = self._read()

    @staticmethod
    def _read() -> tuple[float, float]:
        own = os.times()
        mine = own.user + own.system + own.children_user + own.children_system
        try:
            fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
        except OSError:
            return float("nan"), mine
        ticks = [int(x) for x in fields]
        busy = sum(ticks) - ticks[3] - ticks[4]  # all but idle and iowait
        return busy / os.sysconf("SC_CLK_TCK"), mine

    def others(self) -> float:
        """CPU seconds that other processes used since the meter started."""
        busy, mine = self._read()
        return (busy - self.start[0]) - (mine - self.start[1])


def machine() -> dict:
    return {
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "python": platform.python_version(),
    }


# --- e2e: files -> windows --------------------------------------------------------------------------------
def windows_digest(windows) -> str:
    """sha256 of both columns' ids and the window count: equal digests, identical windows."""
    table = windows.with_format("arrow")[:]
    digest = hashlib.sha256(str(len(table)).encode())
    for name in ("input_ids", "shift_labels"):
        values = table.column(name).combine_chunks().flatten().to_numpy(zero_copy_only=False)
        digest.update(name.encode())
        digest.update(values.tobytes())
    return digest.hexdigest()


def e2e_run(files: list[Path], num_proc: int, tok, work: Path) -> dict:
    """One run from files to windows in an empty cache folder; the folder is removed afterwards."""
    import hfgpt.data.windows as windows_module
    from hfgpt.data.sources import load_corpus as hf_load_corpus

    cache = Path(tempfile.mkdtemp(prefix=f"p{num_proc}-", dir=work))
    skipped: list[str] = []
    try:
        meter = CpuMeter()
        with CacheHits() as hits, StageTimer(windows_module) as stages:
            gc.collect()
            os.sync()  # the previous run's dirty pages must not throttle this run's writes
            cpu0 = meter._read()[1]
            start = time.perf_counter()
            corpus = hf_load_corpus(files, cache_dir=str(cache), skip_bad_files=True, report=skipped.append)
            loaded = time.perf_counter()
            windows = windows_module.window(
                corpus, tokenizer=tok, max_length=MAX_LENGTH, stride=STRIDE, num_proc=num_proc
            )
            seconds = time.perf_counter() - start
            cpu = meter._read()[1] - cpu0
        assert not hits.hits, f"datasets reused a cache (num_proc={num_proc}): {hits.hits[:2]}"
        outside = [f["filename"] for f in windows.cache_files if not f["filename"].startswith(str(cache))]
        assert windows.cache_files and not outside, (
            f"windows read from outside the run's cache: {outside[:2]}"
        )
        mb = sum(len(t.encode("utf-8")) for t in corpus["text"]) / 1e6
        tokenize, stream = stages.seconds["tokenize"], stages.seconds["stream_of_tokens"]
        return {
            "seconds": seconds,
            "mb": mb,
            "cpu": cpu,
            "load": loaded - start,
            "tokenize": tokenize,
            "stream": stream,
            "windowing": seconds - (loaded - start) - tokenize - stream,
            "windows": len(windows),
            "digest": windows_digest(windows),
            "cache_files": sum(1 for p in cache.rglob("*") if p.is_file()),
            "others_cpu": meter.others(),
            "documents": len(corpus),
            "skipped": skipped,
        }
    finally:
        shutil.rmtree(cache, ignore_errors=True)


# --- tok: the batched call vs a tiktoken loop -------------------------------------------------------------
def tok_pass(chunks: list[list[str]], enc, tok, flip: bool, check: bool) -> dict[str, float]:
    """One pass over the chunks; per chunk both methods back to back (order flipped on odd passes)."""
    methods = {
        "loop": lambda chunk: [enc.encode_ordinary(t) for t in chunk],
        "tok": lambda chunk: tok(chunk)["input_ids"],
    }
    order = list(methods)[::-1] if flip else list(methods)
    seconds = dict.fromkeys(methods, 0.0)
    gc.collect()
    for j, chunk in enumerate(chunks):
        ids = {}
        for key in order:
            start = time.perf_counter()
            ids[key] = methods[key](chunk)
            seconds[key] += time.perf_counter() - start
        if check:
            check_ids(f"tok(texts) (files {j * BATCH}..)", ids["tok"], ids["loop"])
    return seconds


# --- fp: the fingerprint's fixed cost ---------------------------------------------------------------------
class HasherClock:
    """Seconds spent in datasets' `Hasher.hash` (and how many calls) while installed."""

    def __enter__(self):
        from datasets.fingerprint import Hasher

        self.cls, self.original = Hasher, Hasher.__dict__["hash"]
        self.calls, self.seconds = 0, 0.0
        clock, original = self, self.original.__func__

        def timed_hash(cls, value):
            start = time.perf_counter()
            try:
                return original(cls, value)
            finally:
                clock.calls += 1
                clock.seconds += time.perf_counter() - start

        Hasher.hash = classmethod(timed_hash)
        return self

    def __exit__(self, *exc):
        self.cls.hash = self.original


def fingerprint_costs(tok, repeats: int, sample: list[str]) -> dict:
    from datasets import Dataset
    from datasets.fingerprint import Hasher

    from hfgpt.data.stream import tokenizer_fingerprint
    from hfgpt.data.windows import window

    ours, theirs = [], []
    for i in range(repeats):
        pair = [("ours", lambda: tokenizer_fingerprint(tok)), ("theirs", lambda: Hasher.hash(tok))]
        for key, fn in pair[:: -1 if i % 2 else 1]:
            took, _ = timed(fn)
            (ours if key == "ours" else theirs).append(took)
    dataset = Dataset.from_dict({"text": sample})
    with HasherClock() as clock:
        window(dataset, tokenizer=tok, max_length=MAX_LENGTH, stride=STRIDE).cleanup_cache_files()
    return {
        "ours": statistics.median(ours),
        "theirs": statistics.median(theirs),
        "hasher_calls": clock.calls,
        "hasher_seconds": clock.seconds,
    }


# --- the report -------------------------------------------------------------------------------------------
def verdict(value: float, target: float) -> str:
    return "met" if value >= target else "**not met**"


STAGES = ("seconds", "load", "tokenize", "stream", "windowing", "cpu", "others_cpu")


def medians(e2e: dict[int, list[dict]]) -> dict[int, dict[str, float]]:
    return {n: {k: statistics.median(run[k] for run in runs) for k in STAGES} for n, runs in e2e.items()}


def ratios(result: dict) -> dict[str, float]:
    med, tok = medians(result["e2e"]), result["tok"]["median"]
    return {
        "e2e_2_over_1": med[1]["seconds"] / med[2]["seconds"],
        "window_2_over_1": (med[1]["seconds"] - med[1]["load"]) / (med[2]["seconds"] - med[2]["load"]),
        "tok_over_loop": tok["loop"] / tok["tok"],
    }


def report(result: dict) -> str:
    m, e2e, tk, fp = result["machine"], result["e2e"], result["tok"], result["fingerprint"]
    med, ratio = medians(e2e), result["ratios"]
    mb = e2e[PROCS[0]][0]["mb"]
    rate = {n: mb / med[n]["seconds"] for n in e2e}
    scaling, window_scaling, tok_ratio = (
        ratio["e2e_2_over_1"],
        ratio["window_2_over_1"],
        ratio["tok_over_loop"],
    )
    loads = result["load_before"], result["load_after"]
    lines = [
        f"Machine: {m['cpu']}, {m['cpus']} CPUs ({m['affinity']} usable by this process), Python {m['python']}. "
        f"Load average (1/5/15 min) before {'/'.join(f'{x:.2f}' for x in loads[0])}, "
        f"after {'/'.join(f'{x:.2f}' for x in loads[1])}; other processes used {result['others_cpu']:.0f} CPU s "
        f"of the {result['wall']:.0f} s x {m['affinity']} CPUs the run lasted ({result['others_cpu'] / result['wall']:.2f} cores).",
        f"Command: `{result['command']}`",
        "",
        f"**End to end, corpus files -> windows** ({len(result['files'])} files, "
        f"{len(result['files']) - e2e[1][0]['documents']} skipped as not UTF-8, {mb:.1f} MB of text, "
        f"{e2e[1][0]['windows']:,} windows of {MAX_LENGTH}, stride {STRIDE}; median of {len(e2e[1])} passes, "
        "1 and 2 processes interleaved, an empty datasets cache each run):",
        "",
        "| num_proc | total s | MB/s | load_corpus s | tokenize s | stream s | windowing s | CPU s (ours) | CPU s (others) | every pass, s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for n in e2e:
        d, every = med[n], ", ".join(f"{r['seconds']:.2f}" for r in e2e[n])
        lines.append(
            f"| {n} | {d['seconds']:.2f} | {rate[n]:.2f} | {d['load']:.2f} | {d['tokenize']:.2f} | {d['stream']:.2f} | "
            f"{d['windowing']:.2f} | {d['cpu']:.1f} | {d['others_cpu']:.1f} | {every} |"
        )
    tok_rate = {k: tk["mb"] / v for k, v in tk["median"].items()}
    every_tok = {k: ", ".join(f"{s:.2f}" for s in v) for k, v in tk["passes_s"].items()}
    lines += [
        "",
        f"**Tokenizer**: {tk['files']} files, {tk['mb']:.1f} MB in batches of {BATCH}, median of {tk['passes']} passes, "
        "chunk by chunk interleaved; ids asserted equal.",
        "",
        "| method | MB/s (median pass) | every pass, s |",
        "|---|---:|---|",
        f"| tiktoken `encode_ordinary`, a Python loop over the batch | {tok_rate['loop']:.2f} | {every_tok['loop']} |",
        f"| `GPT2BPETokenizer()(batch)` | {tok_rate['tok']:.2f} | {every_tok['tok']} |",
        "",
        "**Fingerprint** of the tokenizer for `datasets.map` (median of the passes):",
        "",
        "| what | seconds |",
        "|---|---:|",
        f"| `tokenizer_fingerprint(tok)` (what `window()` hashes) | {fp['ours']:.3f} |",
        f"| datasets' `Hasher.hash(tok)` (what `map` would hash without `new_fingerprint`) | {fp['theirs']:.3f} |",
        f"| datasets' Hasher during one `window(texts, tok)` call ({fp['hasher_calls']} calls) | {fp['hasher_seconds']:.3f} |",
        "",
        "| ratio | value | target |",
        "|---|---:|---|",
        f"| e2e MB/s, 2 processes / 1 | {scaling:.2f}× | ≥ {TARGET_SCALING}× {verdict(scaling, TARGET_SCALING)} |",
        f"| `window()` alone (e2e minus load_corpus), 2 / 1 | {window_scaling:.2f}× | |",
        f"| `tok(texts)` / tiktoken loop | {tok_ratio:.2f}× | ≥ {TARGET_TOK}× {verdict(tok_ratio, TARGET_TOK)} |",
        f"| Hasher.hash(tok) / tokenizer_fingerprint(tok) | {fp['theirs'] / fp['ours']:.0f}× | |",
        "",
        f"Windows identical in all {sum(len(v) for v in e2e.values())} runs (sha256 {e2e[1][0]['digest'][:12]}); "
        "no datasets cache hit logged; every windows file inside its run's fresh cache folder.",
    ]
    return "\n".join(lines)


def select_files(max_mb: float | None) -> list[Path]:
    files, total = [], 0
    for path in stdlib_files():
        size = path.stat().st_size
        if max_mb is not None and files and total + size > max_mb * 1e6:
            break
        files.append(path)
        total += size
    return files


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--max-mb", type=float, default=None, help="use at most this many MB of the corpus")
    parser.add_argument(
        "--repeats", type=int, default=5, help="passes per measurement (the median is reported)"
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 MB, 1 pass")
    parser.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if args.quick:
        args.max_mb, args.repeats = args.max_mb or 2.0, 1
    argv = sys.argv[1:] if argv is None else argv
    command = ("python benchmarks/bench_throughput.py " + " ".join(argv)).rstrip()

    import hfgpt

    load_before, meter, started = os.getloadavg(), CpuMeter(), time.perf_counter()
    tok = hfgpt.GPT2BPETokenizer()
    files = select_files(args.max_mb)
    texts = load_corpus(args.max_mb)
    work = Path(tempfile.mkdtemp(prefix="hfgpt-bench-throughput-"))
    result: dict = {"machine": machine(), "command": command, "files": [str(p) for p in files]}
    try:
        e2e: dict[int, list[dict]] = {n: [] for n in PROCS}
        for i in range(args.repeats):
            for n in PROCS[:: -1 if i % 2 else 1]:
                run = e2e_run(files, n, tok, work)
                e2e[n].append(run)
                print(
                    f"  e2e num_proc={n}: {run['seconds']:.2f} s ({run['mb'] / run['seconds']:.2f} MB/s; load "
                    f"{run['load']:.2f}, tokenize {run['tokenize']:.2f}, stream {run['stream']:.2f}, windowing "
                    f"{run['windowing']:.2f}; CPU {run['cpu']:.1f} s, others {run['others_cpu']:.1f} s)",
                    flush=True,
                )
        digests = {run["digest"] for runs in e2e.values() for run in runs}
        assert len(digests) == 1, "the runs made different windows"

        chunks, enc = batched(texts), tiktoken_gpt2()
        passes = {"loop": [], "tok": []}
        for i in range(args.repeats):
            seconds = tok_pass(chunks, enc, tok, flip=bool(i % 2), check=i == 0)
            for key, value in seconds.items():
                passes[key].append(value)
            print(
                f"  tok pass {i + 1}: loop {seconds['loop']:.2f} s, tok(texts) {seconds['tok']:.2f} s",
                flush=True,
            )
        result["tok"] = {
            "files": len(texts),
            "mb": corpus_mb(texts),
            "passes": args.repeats,
            "passes_s": passes,
            "median": {k: statistics.median(v) for k, v in passes.items()},
        }
        result["fingerprint"] = fingerprint_costs(tok, max(args.repeats, 3), texts[:BATCH])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result["e2e"] = e2e
    result["load_before"], result["load_after"] = load_before, os.getloadavg()
    result["wall"], result["others_cpu"] = time.perf_counter() - started, meter.others()
    result["ratios"] = ratios(result)
    text = report(result)
    print()
    print(text)
    if args.json is not None:
        args.json.write_text(json.dumps({**result, "files": len(files)}, indent=1, default=str))
    return result


if __name__ == "__main__":
    main()
