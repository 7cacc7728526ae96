"""Training throughput on a GPU: hfgpt vs transformers' GPT2LMHeadModel under the same Trainer settings, each
speed lever of hfgpt measured by turning it off, and the steady state `hfgpt train` itself reports.

Both models have GPT-2's 124M shape (the `gpt2` preset: 12 layers, 12 heads, 768 wide, 50,257 tokens) and
train at context 1024 on random token windows with transformers' Trainer: bf16 autocast, TF32, SDPA
attention, fused AdamW, dataloader workers with pinned memory, no host read in the step. Each run (a separate
process, so peak memories do not mix) trains `--warmup` steps, then `--steps` timed ones: the GPU is
synchronised once after the warm-up and once at the end, never inside a step, and tokens/s is the timed
steps' tokens over that time. MFU is the model FLOPs (`hfgpt.training.mfu`: 6 x parameters + the attention's
12 x layers x context x width per token) over the device's dense bf16 peak.

    python benchmarks/bench_gpu.py                    # hfgpt vs GPT2LMHeadModel, compiled and not
    python benchmarks/bench_gpu.py --issue            # the issue's whole measurement in one run (see below)
    python benchmarks/bench_gpu.py --no-pad-vocab     # a lever off, for hfgpt (see the lever flags)
    python benchmarks/bench_gpu.py --quick            # CPU smoke run: tiny models, a few steps, no MFU

The levers (each flag turns one off or changes it, for the hfgpt runs; GPT2LMHeadModel keeps the defaults):
the vocabulary padded to a multiple of 128 inside the loss's matmuls (`--no-pad-vocab`), fused AdamW
(`--optim adamw_torch`), no host synchronisation in the step (`--nan-filter` turns Trainer's per-step NaN
check back on, a read of the loss each step), dataloader workers with pinned memory (`--workers 0`), larger
micro-batches reached through accumulation (`--batch`, `--accumulation`).

`--issue` runs, within `--budget` seconds (a run is not started past it): hfgpt and GPT2LMHeadModel compiled,
then not compiled, then each lever off (compiled), then `hfgpt train --preset gpt2 --max-length 1024` on the
standard library's modules, plain (its defaults) and with `--compile --batch-size N`, reading the steady-state
line it prints. It writes the tables to stdout and everything to `--json`. The targets it checks: >= 460,000
tokens/s (llm.c on one H100), >= 1.15x GPT2LMHeadModel compiled, peak memory <= 0.8x GPT2LMHeadModel's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys, time
import torch
from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainerCallback

import hfgpt
from hfgpt import losses
from hfgpt.training.arguments import trainer_arguments
from hfgpt.training.mfu import model_flops_per_token
from hfgpt.training.progress import synchronize

spec = json.loads(sys.argv[1])
cuda = torch.cuda.is_available()
if not spec["pad_vocab"]:
    losses.PAD_VOCAB_MULTIPLE["cuda"] = 1
torch.manual_seed(0)
if spec["model"] == "hfgpt":
    model = hfgpt.HFGPTForCausalLM(hfgpt.HFGPTConfig.from_preset(spec["preset"], drop_rate=0.0))
else:
    c = hfgpt.PRESETS[spec["preset"]]
    model = GPT2LMHeadModel(GPT2Config(n_embd=c["emb_dim"], n_head=c["n_heads"], n_layer=c["n_layers"],
                                       n_positions=c.get("context_length", 1024), vocab_size=c.get("vocab_size", 50257),
                                       resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0))
length, batch, accumulation = spec["length"], spec["batch"], spec["accumulation"]
steps = spec["warmup"] + spec["steps"]
vocab = model.config.vocab_size
g = torch.Generator().manual_seed(1)
rows = [{"input_ids": x, "labels": x} for x in torch.randint(0, vocab, (steps * batch * accumulation, length), generator=g)]

class Clock(TrainerCallback):
    # the GPU is synchronised after the warm-up and at the end only: nothing inside a step
    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step in (spec["warmup"], steps):
            synchronize()
            setattr(self, "warm" if state.global_step == spec["warmup"] else "end", time.perf_counter())

clock = Clock()
args = trainer_arguments(spec["out"], label_names=["labels"], epochs=1, batch_size=batch, learning_rate=1e-4,
                         seed=0, cpu=not cuda, max_steps=steps, logging_steps=10**9, bf16=cuda,
                         gradient_accumulation_steps=accumulation, torch_compile=spec["compile"],
                         optim=spec["optim"], logging_nan_inf_filter=spec["nan_filter"],
                         dataloader_num_workers=spec["workers"] if cuda else 0,
                         dataloader_persistent_workers=bool(spec["workers"]) and cuda,
                         dataloader_pin_memory=cuda)
trainer = Trainer(model=model, args=args, train_dataset=rows, callbacks=[clock])
if cuda:
    torch.cuda.reset_peak_memory_stats()
trainer.train()
seconds = clock.end - clock.warm
tokens = spec["steps"] * batch * accumulation * length
flops_per_token = model_flops_per_token(model, length)
print(json.dumps({"tokens_per_s": tokens / seconds, "ms_per_step": 1000 * seconds / spec["steps"],
                  "flops_per_s": flops_per_token * tokens / seconds,
                  "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
                  "params": sum(p.numel() for p in model.parameters())}))
"""

LEVERS = {  # name -> (what it changes in the spec, what the row says)
    "pad_vocab": ({"pad_vocab": False}, "vocabulary not padded (50,257 in the matmuls)"),
    "optim": ({"optim": "adamw_torch"}, "AdamW not fused (adamw_torch)"),
    "nan_filter": ({"nan_filter": True}, "a host read per step (Trainer's NaN filter)"),
    "workers": ({"workers": 0}, "no dataloader workers"),
}


def run(spec: dict) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(spec)], capture_output=True, text=True, env={**os.environ}
    )
    if done.returncode:
        raise RuntimeError(f"{spec['model']} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def device_peak(override: float | None) -> tuple[str, float | None]:
    import torch

    if not torch.cuda.is_available():
        return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)", None
    from hfgpt.training.mfu import peak_flops

    name = torch.cuda.get_device_name()
    peak = peak_flops(name, override)
    return name, peak / 1e12 if peak else None


def stdlib_corpus() -> str:
    """The standard library's top-level modules (~5 MB), a corpus every machine has, as a glob."""
    return str(Path(sysconfig.get_paths()["stdlib"]) / "*.py")


STEADY = re.compile(r"steady state: ([\d,]+) ms/step, ([\d,]+) tokens/s(?:, MFU ([\d.]+)%)?")


def train_cli(options: list[str], out: str, quick: bool) -> dict:
    """`hfgpt train` on the standard library with `options`; its steady-state line and time line, parsed."""
    command = [sys.executable, "-m", "hfgpt.cli", "train", stdlib_corpus(), "--output-dir", out, "--overwrite",
               "--no-progress", "--max-new-tokens", "5", *options]  # fmt: skip
    if quick:
        command += ["--preset", "tiny", "--max-length", "32", "--max-steps", "6", "--max-eval-tokens", "2048"]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ})
    if done.returncode:
        raise RuntimeError(f"hfgpt train failed:\n{done.stderr[-3000:]}")
    found = STEADY.search(done.stdout)
    lines = [
        line for line in done.stdout.splitlines() if line.startswith(("time:", "steady state:", "final"))
    ]
    return {
        "command": " ".join(["hfgpt", *command[3:]]),
        "wall_s": time.perf_counter() - started,
        "ms_per_step": float(found[1].replace(",", "")) if found else None,
        "tokens_per_s": float(found[2].replace(",", "")) if found else None,
        "mfu": float(found[3]) / 100 if found and found[3] else None,
        "lines": lines,
        "precision": next((line for line in done.stderr.splitlines() if "mixed precision" in line), ""),
    }


def spec_for(args, **changes) -> dict:
    spec = dict(
        preset=args.preset,
        length=args.length,
        batch=args.batch,
        accumulation=args.accumulation,
        warmup=args.warmup,
        steps=args.steps,
        model="hfgpt",
        compile=True,
        pad_vocab=not args.no_pad_vocab,
        optim=args.optim,
        nan_filter=args.nan_filter,
        workers=args.workers,
        out=args.out,
    )
    spec.update(changes)
    return spec


def table(rows: list[tuple[str, dict]], peak: float | None) -> list[str]:
    lines = ["| run | tokens/s | ms/step | MFU | peak GPU memory GiB |", "|---|---:|---:|---:|---:|"]
    for label, r in rows:
        mfu = f"{r['flops_per_s'] / (peak * 1e12):.1%}" if peak and r.get("flops_per_s") else "n/a"
        memory = f"{r['peak_gib']:.1f}" if r.get("peak_gib") is not None else "n/a"
        lines.append(f"| {label} | {r['tokens_per_s']:,.0f} | {r['ms_per_step']:.1f} | {mfu} | {memory} |")
    return lines


def issue(args, device: str, peak: float | None) -> None:
    """The issue's measurement: see the module docstring."""
    started = time.perf_counter()
    results: dict[str, dict] = {}
    gpt2 = dict(
        model="gpt2", pad_vocab=True, optim="adamw_torch_fused", nan_filter=False
    )  # Trainer's defaults
    cli = ["--preset", "gpt2", "--max-length", "1024", "--max-steps", "60"]
    plan: list[tuple[str, str, object]] = [
        ("hfgpt, compiled", "bench", spec_for(args)),
        ("GPT2LMHeadModel, compiled", "bench", spec_for(args, **gpt2)),
        ("hfgpt train, plain", "cli", cli),
        (
            "hfgpt train, --compile --batch-size N",
            "cli",
            [*cli, "--compile", "--batch-size", str(args.batch)],
        ),
        ("hfgpt, not compiled", "bench", spec_for(args, compile=False)),
        ("GPT2LMHeadModel, not compiled", "bench", spec_for(args, compile=False, **gpt2)),
    ]
    for change, label in LEVERS.values():
        plan.append((f"hfgpt, compiled, {label}", "bench", spec_for(args, **change)))
    if args.quick:  # a CPU smoke run of the same code: tiny shapes
        for _, kind, spec in plan:
            if kind == "bench":
                spec.update(preset="tiny", length=32, batch=2, warmup=1, steps=2, compile=False)
    skipped = []
    for label, kind, spec in plan:
        if time.perf_counter() - started > args.budget:
            skipped.append(label)
            continue
        try:
            if kind == "bench":
                results[label] = run(spec)
            else:
                results[label] = train_cli(spec, os.path.join(args.out, "train"), args.quick)
        except RuntimeError as exc:
            results[label] = {"error": str(exc)[-1500:]}
        print(f"[{time.perf_counter() - started:.0f} s] {label}: done", file=sys.stderr, flush=True)

    import torch

    print(f"{device}, torch {torch.__version__}, {time.strftime('%Y-%m-%d %H:%M')}, "
          f"{'tiny (quick)' if args.quick else args.preset} at {args.length} tokens x batch {args.batch} x "
          f"accumulation {args.accumulation}, {args.warmup} warm-up + {args.steps} timed steps per run\n")  # fmt: skip
    bench = [(label, r) for label, r in results.items() if "tokens_per_s" in r and "lines" not in r]
    print("\n".join(table(bench, peak)))
    ours, theirs = results.get("hfgpt, compiled", {}), results.get("GPT2LMHeadModel, compiled", {})
    if "tokens_per_s" in ours and "tokens_per_s" in theirs:
        ratio = ours["tokens_per_s"] / theirs["tokens_per_s"]
        memory = (
            (ours["peak_gib"] / theirs["peak_gib"])
            if ours.get("peak_gib") and theirs.get("peak_gib")
            else None
        )
        print("\n| target | measured | met |\n|---|---:|---|")
        print(f"| >= 460,000 tokens/s (hfgpt compiled) | {ours['tokens_per_s']:,.0f} | "
              f"{'yes' if ours['tokens_per_s'] >= 460_000 else 'no'} |")  # fmt: skip
        print(f"| >= 1.15x GPT2LMHeadModel compiled | {ratio:.2f}x | {'yes' if ratio >= 1.15 else 'no'} |")
        if memory is not None:
            print(
                f"| peak memory <= 0.8x GPT2LMHeadModel's | {memory:.2f}x | {'yes' if memory <= 0.8 else 'no'} |"
            )
        for label, r in bench:
            if label.startswith("hfgpt, compiled, "):
                print(f"lever: {label[len('hfgpt, compiled, '):]}: {r['tokens_per_s'] / ours['tokens_per_s']:.3f}x "
                      "the tokens/s with every lever on")  # fmt: skip
    for r in results.values():
        if "lines" in r:
            print(f"\n`{r['command']}` ({r['wall_s']:.0f} s wall; {r['precision']}):")
            print("\n".join(f"    {line}" for line in r["lines"]))
    for label, r in results.items():
        if "error" in r:
            print(f"\n{label} FAILED:\n{r['error']}")
    if skipped:
        print(f"\nnot run (past the {args.budget:.0f} s budget): {', '.join(skipped)}")
    if args.json:
        Path(args.json).write_text(json.dumps({"device": device, "peak_tflops": peak, "results": results,
                                               "skipped": skipped}, indent=1))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=20, help="timed steps per run (default: 20)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first; compilation happens here")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the median is reported")
    parser.add_argument(
        "--batch", type=int, default=8, help="windows per micro-batch (default: 8 x 1024 tokens)"
    )
    parser.add_argument("--accumulation", type=int, default=1, help="micro-batches per optimizer step")
    parser.add_argument("--length", type=int, default=1024, help="tokens per window")
    parser.add_argument("--preset", default="gpt2")
    parser.add_argument(
        "--no-pad-vocab", action="store_true", help="hfgpt: 50,257 columns in the loss's matmuls"
    )
    parser.add_argument(
        "--optim", default="adamw_torch_fused", help="Trainer's optimizer (default: fused AdamW)"
    )
    parser.add_argument(
        "--nan-filter", action="store_true", help="Trainer's per-step NaN check (a host read)"
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="dataloader workers, pinned memory (default: 2)"
    )
    parser.add_argument("--peak-tflops", type=float, help="the device's bf16 peak, for MFU")
    parser.add_argument(
        "--issue", action="store_true", help="the issue's whole measurement (module docstring)"
    )
    parser.add_argument(
        "--budget", type=float, default=480, help="--issue: start no run after this many seconds"
    )
    parser.add_argument("--json", help="--issue: write every figure to this file")
    parser.add_argument("--quick", action="store_true", help="CPU smoke run: tiny models, 2 steps, 1 round")
    parser.add_argument("--out", default="/tmp/hfgpt-bench-gpu", help="scratch folder for Trainer")
    args = parser.parse_args()

    device, peak = device_peak(args.peak_tflops)
    if args.issue:
        if args.quick:
            args.warmup, args.steps = 1, 2
        issue(args, device, peak)
        return
    if args.quick:
        args.preset, args.length, args.batch, args.warmup, args.steps = "tiny", 32, 2, 1, 2
        rounds, settings = 1, [False]
    else:
        rounds, settings = args.rounds, [False, True]
    results: dict[tuple[str, bool], list[dict]] = {}
    for _ in range(rounds):
        for compiled in settings:
            for model in ("hfgpt", "gpt2"):
                spec = spec_for(args, model=model, compile=compiled)
                if model == "gpt2":  # the hfgpt-only lever keeps its default for GPT-2
                    spec["pad_vocab"] = True
                results.setdefault((model, compiled), []).append(run(spec))

    print(f"{device}, torch {__import__('torch').__version__}, {time.strftime('%Y-%m-%d %H:%M')}, "
          f"{args.preset} at {args.length} tokens x batch {args.batch} x accumulation {args.accumulation}, "
          f"median of {rounds} round(s)\n")  # fmt: skip
    print("| model | compile | tokens/s | MFU | peak GPU memory GiB |")
    print("|---|---|---:|---:|---:|")
    medians = {}
    for (model, compiled), runs in results.items():
        tokens = statistics.median(r["tokens_per_s"] for r in runs)
        flops = statistics.median(r["flops_per_s"] for r in runs)
        medians[model, compiled] = tokens
        mfu = f"{flops / (peak * 1e12):.1%}" if peak else "n/a"
        memory = runs[-1]["peak_gib"]
        print(f"| {model} | {'yes' if compiled else 'no'} | {tokens:,.0f} | {mfu} | "
              f"{f'{memory:.1f}' if memory is not None else 'n/a'} |")  # fmt: skip
    for compiled in settings:
        ratio = medians["hfgpt", compiled] / medians["gpt2", compiled]
        print(f"\nhfgpt / GPT2LMHeadModel tokens/s{' (compiled)' if compiled else ''}: {ratio:.2f}x")


if __name__ == "__main__":
    main()
