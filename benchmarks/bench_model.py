"""hfgpt's GPT vs transformers' GPT2LMHeadModel at the same size, on CPU.

Measured side by side in one run (the models' timing rounds are interleaved A B C A B C ... after warm-up):

    train   tokens/s of one training step (forward + backward + AdamW step), batch 4 x 256 tokens (--batch):
            hfgpt (sdpa), GPT2LMHeadModel (sdpa), hfgpt (eager attention), hfgpt (sdpa) with the plain loss
            (`loss_chunk_size=0`: full logits; the others use the default chunked loss, `hfgpt.losses`)
    memory  peak RSS growth over the first training steps, each model in a fresh subprocess, and its ratio to
            GPT2LMHeadModel's (target for the chunked loss: <= 0.6x at batch 8 x 256)
    decode  greedy `generate(do_sample=False)` tokens/s, prompt 32 tokens + 64 new tokens, batch 1:
            hfgpt with KV cache, hfgpt `use_cache=False`, GPT2LMHeadModel with KV cache
    sanity  `from_gpt2(gpt2)` gives GPT-2's logits and GPT-2's greedy tokens

Size: vocab 50257, emb 256, 4 layers, 4 heads, context 256, dropout 0.1 (16.1M parameters, tied head).

    python benchmarks/bench_model.py            # ~3 min on 2 cores
    python benchmarks/bench_model.py --quick    # smoke run
    python benchmarks/bench_model.py --batch 8 --memory-only   # the memory-lean loss's figure, ~1 min
    python benchmarks/bench_model.py --before main --train-only  # this tree's training step vs another revision's

`--before REV` adds "hfgpt (sdpa) @REV": that revision's `hfgpt` package, unpacked with `git archive` and renamed
`hfgpt_before` (as `bench_position_hooks.py` does), interleaved step by step with the others in the same process,
so a change's cost or gain on the training step is measured against GPT2LMHeadModel under the same load.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

VOCAB, EMB, LAYERS, HEADS, SEQ, BATCH = 50257, 256, 4, 4, 256, 4
PROMPT, NEW_TOKENS = 32, 64


def hfgpt_model(attn_implementation: str = "sdpa", loss_chunk_size: int | None = 1024):
    import hfgpt

    config = hfgpt.HFGPTConfig(
        vocab_size=VOCAB,
        context_length=SEQ,
        emb_dim=EMB,
        n_heads=HEADS,
        n_layers=LAYERS,
        drop_rate=0.1,
        qkv_bias=True,
        loss_chunk_size=loss_chunk_size,
    )
    return hfgpt.HFGPTForCausalLM._from_config(config, attn_implementation=attn_implementation)


def gpt2_model():
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(vocab_size=VOCAB, n_embd=EMB, n_layer=LAYERS, n_head=HEADS, n_positions=SEQ)
    return GPT2LMHeadModel._from_config(config, attn_implementation="sdpa")


BUILDERS = {
    "hfgpt (sdpa)": lambda: hfgpt_model("sdpa"),
    "GPT2LMHeadModel (sdpa)": gpt2_model,
    "hfgpt (eager)": lambda: hfgpt_model("eager"),
    "hfgpt (sdpa, plain loss)": lambda: hfgpt_model("sdpa", loss_chunk_size=0),
}
REFERENCE = "GPT2LMHeadModel (sdpa)"
BEFORE: str | None = None  # the revision of `--before`, whose package is importable as `hfgpt_before`


def before_model():
    import hfgpt_before

    config = hfgpt_before.HFGPTConfig(
        vocab_size=VOCAB, context_length=SEQ, emb_dim=EMB, n_heads=HEADS, n_layers=LAYERS, drop_rate=0.1,
        qkv_bias=True,
    )  # fmt: skip
    return hfgpt_before.HFGPTForCausalLM._from_config(config, attn_implementation="sdpa")


def add_before(revision: str, scratch: str) -> None:
    """Make `revision`'s hfgpt importable as `hfgpt_before` (from `scratch`) and benchmark it too."""
    global BEFORE
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_position_hooks import unpack_renamed

    if not (Path(scratch) / "hfgpt_before").exists():
        unpack_renamed(revision, Path(scratch))
    sys.path.insert(0, scratch)
    BEFORE = revision
    BUILDERS[f"hfgpt (sdpa) @{revision}"] = before_model


def batch_ids(seed: int = 0) -> torch.Tensor:
    return torch.randint(0, VOCAB, (BATCH, SEQ), generator=torch.Generator().manual_seed(seed))


class Trainer:
    """One model, its AdamW optimizer and a fixed batch; `step()` is one timed training step."""

    def __init__(self, model):
        self.model = model.train()
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        self.ids = batch_ids()

    def step(self) -> float:
        start = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.model(input_ids=self.ids, labels=self.ids).loss
        loss.backward()
        self.optimizer.step()
        return time.perf_counter() - start


def bench_train(rounds: int, warmup: int) -> dict[str, list[float]]:
    """Per-step seconds for each model; one step per model per round, models interleaved."""
    torch.manual_seed(0)
    trainers = {name: Trainer(build()) for name, build in BUILDERS.items()}
    for _ in range(warmup):
        for trainer in trainers.values():
            trainer.step()
    times: dict[str, list[float]] = {name: [] for name in trainers}
    for _ in range(rounds):
        for name, trainer in trainers.items():
            times[name].append(trainer.step())
    return times


def peak_rss() -> int:
    """This process's peak RSS in bytes: VmHWM, which starts afresh at exec. `getrusage().ru_maxrss` does not: it
    keeps the parent's peak across fork + exec, so a child spawned by a large parent reports the parent's size."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # kB
    return (
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    )  # no procfs: KiB on Linux, bytes on macOS


def memory_child(name: str, steps: int) -> None:
    """In a fresh process: RSS before the first step, then the process's peak RSS over `steps` steps."""
    import psutil

    torch.set_num_threads(2)
    trainer = Trainer(BUILDERS[name]())
    before = psutil.Process().memory_info().rss
    for _ in range(steps):
        trainer.step()
    peak = peak_rss()
    print(json.dumps({"before": before, "peak": peak}))


def bench_memory(steps: int, scratch: str | None = None) -> dict[str, dict[str, int]]:
    out = {}
    before = ["--before", BEFORE, "--scratch", scratch] if BEFORE else []
    for name in BUILDERS:
        result = subprocess.run(
            [
                sys.executable,
                __file__,
                "--memory-child",
                name,
                "--memory-steps",
                str(steps),
                "--batch",
                str(BATCH),
                *before,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        out[name] = json.loads(result.stdout.strip().splitlines()[-1])
    return out


def sanity_and_models():
    """GPT-2 with random weights, and hfgpt converted from it: logits and greedy tokens must agree."""
    from hfgpt import from_gpt2

    torch.manual_seed(0)
    gpt2 = gpt2_model().eval()
    ours = from_gpt2(gpt2).eval()
    ids = batch_ids(1)
    with torch.no_grad():
        a, b = gpt2(input_ids=ids).logits, ours(input_ids=ids).logits
    max_diff = (a - b).abs().max().item()
    assert torch.allclose(a, b, atol=1e-4, rtol=0), f"from_gpt2 logits differ from GPT-2's by {max_diff}"
    return gpt2, ours, max_diff, torch.equal(a, b)


def bench_generate(gpt2, ours, rounds: int) -> tuple[dict[str, list[float]], bool]:
    prompt = batch_ids(2)[:1, :PROMPT]
    kwargs = dict(
        do_sample=False,
        max_new_tokens=NEW_TOKENS,
        min_new_tokens=NEW_TOKENS,
        pad_token_id=0,
        eos_token_id=None,
    )
    runs = {
        "hfgpt, KV cache": lambda: ours.generate(prompt, use_cache=True, **kwargs),
        "hfgpt, use_cache=False": lambda: ours.generate(prompt, use_cache=False, **kwargs),
        "GPT2LMHeadModel, KV cache": lambda: gpt2.generate(prompt, use_cache=True, **kwargs),
    }
    outputs = {name: fn() for name, fn in runs.items()}  # warm-up
    same = all(torch.equal(o, outputs["GPT2LMHeadModel, KV cache"]) for o in outputs.values())
    assert all(o.shape[1] == PROMPT + NEW_TOKENS for o in outputs.values())
    times: dict[str, list[float]] = {name: [] for name in runs}
    with torch.no_grad():
        for _ in range(rounds):
            for name, fn in runs.items():
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    return times, same


def paired(reference: list[float], times: list[float]) -> float:
    """Median over rounds of the speed ratio within a round (steps of one round ran back to back)."""
    return statistics.median(r / t for r, t in zip(reference, times))


def machine_line(command: str) -> str:
    return (
        f"Machine: {os.cpu_count()}-core CPU ({platform.machine()}, load average "
        f"{os.getloadavg()[1]:.1f} over the last 5 min), torch {torch.__version__}, "
        f"`torch.set_num_threads(2)`. Command: `{command}`"
    )


def memory_lines(memory: dict[str, dict[str, int]], args: argparse.Namespace) -> list[str]:
    """Peak RSS growth per model and its ratio to GPT-2's; the chunked loss (default) is held to <= 0.6x."""
    ref = memory[REFERENCE]["peak"] - memory[REFERENCE]["before"]
    lines = [
        f"Peak memory of a training step, batch {BATCH} x {SEQ} tokens, vocab {VOCAB}, each model in a fresh "
        f"subprocess over {args.memory_steps} steps:",
        "",
        "| model | peak RSS growth, MB | ratio to GPT-2 | target |",
        "|---|---:|---:|---|",
    ]
    for name, m in memory.items():
        grow = m["peak"] - m["before"]
        verdict = ""
        if name in ("hfgpt (sdpa)", "hfgpt (eager)"):  # the chunked loss
            verdict = f"≤ 0.6×: {'met' if grow / ref <= 0.6 else '**not met**'}"
        lines.append(f"| {name} | {grow / 2**20:,.0f} | {grow / ref:.2f}× | {verdict} |")
    return lines


def train_lines(train_times: dict[str, list[float]], args: argparse.Namespace) -> list[str]:
    """The training-step table and each hfgpt variant's ratio to GPT2LMHeadModel (and to `--before`)."""
    tokens = BATCH * SEQ
    lines = [
        f"Training step (forward + backward + AdamW), batch {BATCH} x {SEQ}, {args.rounds} interleaved steps per "
        f"model after {args.warmup} warm-up steps:",
        "",
        "| model | median s/step | best s/step | tokens/s (median) | paired median vs GPT-2 |",
        "|---|---:|---:|---:|---:|",
    ]
    ref = train_times[REFERENCE]
    for name, t in train_times.items():
        med, best = statistics.median(t), min(t)
        lines.append(f"| {name} | {med:.3f} | {best:.3f} | {tokens / med:,.0f} | {paired(ref, t):.2f}× |")
    if BEFORE:
        before = train_times[f"hfgpt (sdpa) @{BEFORE}"]
        lines += [
            "",
            f"this tree / {BEFORE} (hfgpt sdpa, paired median): {paired(before, train_times['hfgpt (sdpa)']):.2f}×",
        ]
    return lines


def main(argv: list[str] | None = None) -> None:
    global BATCH
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=12, help="timed training steps per model (interleaved)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed training steps per model")
    parser.add_argument("--gen-rounds", type=int, default=5, help="timed generate() calls per variant")
    parser.add_argument("--memory-steps", type=int, default=3, help="training steps in the memory subprocess")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 rounds, 1 warm-up step")
    parser.add_argument("--batch", type=int, default=BATCH, help="sequences of 256 tokens per training step")
    parser.add_argument("--memory-only", action="store_true", help="only the peak-memory subprocesses")
    parser.add_argument("--before", help="also time the training step of this git revision's hfgpt")
    parser.add_argument("--train-only", action="store_true", help="only the training-step table")
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    parser.add_argument("--scratch", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    BATCH = args.batch  # read by the builders' batches, here and in the memory subprocesses
    if args.before:
        if args.scratch is None:
            holder = tempfile.TemporaryDirectory(prefix="bench-model-")  # removed at exit
            args.scratch = holder.name
        add_before(args.before, args.scratch)
    if args.memory_child:
        memory_child(args.memory_child, args.memory_steps)
        return
    if args.quick:
        args.rounds, args.warmup, args.gen_rounds, args.memory_steps = 2, 1, 1, 2

    torch.set_num_threads(2)
    tokens = BATCH * SEQ
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)
    command = (
        "python benchmarks/bench_model.py"
        + (" " + " ".join(argv if argv is not None else sys.argv[1:])).rstrip()
    )
    if args.memory_only:
        memory = bench_memory(args.memory_steps, args.scratch)
        print("\n".join([machine_line(command), "", *memory_lines(memory, args)]))
        return
    if args.train_only:
        print(
            "\n".join([machine_line(command), "", *train_lines(bench_train(args.rounds, args.warmup), args)])
        )
        print(f"Load average at the end: {os.getloadavg()[0]:.1f} (1 min), {os.getloadavg()[1]:.1f} (5 min)")
        return

    gpt2, ours, max_diff, exact = sanity_and_models()
    sanity = (
        f"Sanity: `from_gpt2(gpt2)` logits vs GPT2LMHeadModel on a {BATCH}x{SEQ} batch: max |diff| = "
        f"{max_diff:.2e} ({'bit-identical' if exact else 'allclose atol=1e-4'})"
    )
    print(sanity, flush=True)
    gen_times, same_tokens = bench_generate(gpt2, ours, args.gen_rounds)
    del gpt2, ours
    print("generation done", flush=True)
    train_times = bench_train(args.rounds, args.warmup)
    print("training done", flush=True)
    memory = bench_memory(args.memory_steps, args.scratch)

    lines = [
        machine_line(command),
        f"Model: vocab {VOCAB}, emb {EMB}, {LAYERS} layers, {HEADS} heads, dropout 0.1; batch {BATCH} x {SEQ} tokens.",
        "",
        sanity,
        "",
        f"Training step (forward + backward + AdamW), {args.rounds} interleaved steps per model after "
        f"{args.warmup} warm-up steps:",
        "",
        "| model | median s/step | best s/step | tokens/s (median) | tokens/s (best) | peak RSS growth, MB |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, t in train_times.items():
        med, best = statistics.median(t), min(t)
        grow = (memory[name]["peak"] - memory[name]["before"]) / 2**20
        lines.append(
            f"| {name} | {med:.3f} | {best:.3f} | {tokens / med:,.0f} | {tokens / best:,.0f} | {grow:,.0f} |"
        )
    ref = train_times["GPT2LMHeadModel (sdpa)"]
    lines += [
        "",
        "| ratio (tokens/s) | median | best | paired median | target |",
        "|---|---:|---:|---:|---|",
    ]
    for name, label, target in (
        ("hfgpt (sdpa)", "hfgpt sdpa / GPT-2 sdpa", 1.0),
        ("hfgpt (eager)", "hfgpt eager / GPT-2 sdpa", None),
        ("hfgpt (sdpa, plain loss)", "hfgpt sdpa plain loss / GPT-2 sdpa", None),
    ):
        t = train_times[name]
        med, best = statistics.median(ref) / statistics.median(t), min(ref) / min(t)
        verdict = (
            ""
            if target is None
            else f"≥ {target:g} (aim 1.2): {'met' if paired(ref, t) >= target else '**not met**'} (paired)"
        )
        lines.append(f"| {label} | {med:.2f}× | {best:.2f}× | {paired(ref, t):.2f}× | {verdict} |")
    sdpa, eager = train_times["hfgpt (sdpa)"], train_times["hfgpt (eager)"]
    lines.append(
        f"| hfgpt sdpa / hfgpt eager | {statistics.median(eager) / statistics.median(sdpa):.2f}× | "
        f"{min(eager) / min(sdpa):.2f}× | {paired(eager, sdpa):.2f}× | |"
    )
    lines += ["", *memory_lines(memory, args)]
    lines += [
        "",
        "median: ratio of the median step times; best: of the fastest steps; paired median: median over rounds of "
        "the ratio between steps run back to back (the most robust to load from other processes).",
        "",
        "Peak RSS growth: VmHWM from /proc/self/status (process peak) minus psutil RSS just before the first "
        f"step, each model in a fresh subprocess over {args.memory_steps} steps (includes gradients and AdamW state).",
        "",
        f"Greedy generation, prompt {PROMPT} tokens + {NEW_TOKENS} new tokens, batch 1, {args.gen_rounds} interleaved "
        f"calls per variant (same weights: hfgpt converted from the GPT-2 model; identical tokens: {same_tokens}):",
        "",
        "| variant | median s | best s | new tokens/s (median) | new tokens/s (best) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, t in gen_times.items():
        med, best = statistics.median(t), min(t)
        lines.append(
            f"| {name} | {med:.3f} | {best:.3f} | {NEW_TOKENS / med:,.0f} | {NEW_TOKENS / best:,.0f} |"
        )
    cached, uncached, ref = (gen_times[k] for k in gen_times)
    lines += [
        "",
        "| ratio (tokens/s) | median | best | paired median |",
        "|---|---:|---:|---:|",
        f"| hfgpt cache / hfgpt no cache | {statistics.median(uncached) / statistics.median(cached):.2f}× | "
        f"{min(uncached) / min(cached):.2f}× | {paired(uncached, cached):.2f}× |",
        f"| hfgpt cache / GPT-2 cache | {statistics.median(ref) / statistics.median(cached):.2f}× | "
        f"{min(ref) / min(cached):.2f}× | {paired(ref, cached):.2f}× |",
    ]
    print()
    print("\n".join(lines))


if __name__ == "__main__":
    main()
