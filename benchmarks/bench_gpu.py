"""Training throughput on a GPU: hfgpt vs transformers' GPT2LMHeadModel under the same Trainer settings.

Both models have GPT-2's 124M shape (the `gpt2` preset: 12 layers, 12 heads, 768 wide, 50,257 tokens),
train at context 1024 on random token windows with transformers' Trainer: bf16 autocast, fused AdamW, TF32,
SDPA attention, pinned-memory loading; with and without `torch.compile`. Each (model, compile) run trains
`--warmup` steps, then `--steps` timed steps; the runs are interleaved over `--rounds` rounds and the median
tokens/s is reported, with model FLOPs utilisation (MFU) against the device's bf16 peak, and the peak GPU
memory of each run (separate processes, so peaks do not mix).

    python benchmarks/bench_gpu.py                    # on a CUDA GPU (an H100 takes a few minutes)
    python benchmarks/bench_gpu.py --peak-tflops 989  # MFU against another peak (default: looked up by name)
    python benchmarks/bench_gpu.py --quick            # CPU smoke run: tiny models, a few steps, no MFU

MFU counts 6 x parameters x tokens per step plus the attention's 12 x layers x context x width per token
(the PaLM appendix's estimate, `hfgpt.training.mfu`, which `hfgpt train` also uses to print MFU at the end
of a GPU run), divided by step time and the peak.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

CHILD = r"""
import json, sys, time
import torch
from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainerCallback

import hfgpt
from hfgpt.training.arguments import trainer_arguments
from hfgpt.training.mfu import model_flops_per_token

spec = json.loads(sys.argv[1])
cuda = torch.cuda.is_available()
torch.manual_seed(0)
if spec["model"] == "hfgpt":
    model = hfgpt.HFGPTForCausalLM(hfgpt.HFGPTConfig.from_preset(spec["preset"], drop_rate=0.0))
else:
    c = hfgpt.PRESETS[spec["preset"]]
    model = GPT2LMHeadModel(GPT2Config(n_embd=c["emb_dim"], n_head=c["n_heads"], n_layer=c["n_layers"],
                                       n_positions=c.get("context_length", 1024), vocab_size=c.get("vocab_size", 50257),
                                       resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0))
length, batch, steps = spec["length"], spec["batch"], spec["warmup"] + spec["steps"]
vocab = model.config.vocab_size
g = torch.Generator().manual_seed(1)
rows = [{"input_ids": x, "labels": x} for x in torch.randint(0, vocab, (steps * batch, length), generator=g)]

class Clock(TrainerCallback):
    def __init__(self):
        self.times = []
    def on_step_end(self, args, state, control, **kwargs):
        if cuda:
            torch.cuda.synchronize()
        self.times.append(time.perf_counter())

clock = Clock()
args = trainer_arguments(spec["out"], label_names=["labels"], epochs=1, batch_size=batch, learning_rate=1e-4,
                         seed=0, cpu=not cuda, max_steps=steps, logging_steps=10**9, bf16=cuda,
                         torch_compile=spec["compile"], dataloader_num_workers=0)
trainer = Trainer(model=model, args=args, train_dataset=rows, callbacks=[clock])
if cuda:
    torch.cuda.reset_peak_memory_stats()
trainer.train()
timed = clock.times[spec["warmup"]:]
seconds = (timed[-1] - clock.times[spec["warmup"] - 1]) / len(timed)
params = sum(p.numel() for p in model.parameters())
flops_per_token = model_flops_per_token(model, length)
print(json.dumps({"tokens_per_s": batch * length / seconds, "flops_per_s": flops_per_token * batch * length / seconds,
                  "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None, "params": params}))
"""


def run(spec: dict) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(spec)], capture_output=True, text=True, env={**os.environ}
    )
    if done.returncode:
        raise SystemExit(f"{spec['model']} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def device_peak(override: float | None) -> tuple[str, float | None]:
    import torch

    if not torch.cuda.is_available():
        return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)", None
    from hfgpt.training.mfu import peak_flops

    name = torch.cuda.get_device_name()
    peak = peak_flops(name, override)
    return name, peak / 1e12 if peak else None


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=20, help="timed steps per run (default: 20)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first; compilation happens here")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the median is reported")
    parser.add_argument("--batch", type=int, default=8, help="windows per step (default: 8 x 1024 tokens)")
    parser.add_argument("--peak-tflops", type=float, help="the device's bf16 peak, for MFU")
    parser.add_argument("--quick", action="store_true", help="CPU smoke run: tiny models, 2 steps, 1 round")
    parser.add_argument("--out", default="/tmp/hfgpt-bench-gpu", help="scratch folder for Trainer")
    args = parser.parse_args()

    if args.quick:
        shape = dict(preset="tiny", length=32, batch=2, warmup=1, steps=2)
        rounds, settings = 1, [False]
    else:
        shape = dict(preset="gpt2", length=1024, batch=args.batch, warmup=args.warmup, steps=args.steps)
        rounds, settings = args.rounds, [False, True]
    device, peak = device_peak(args.peak_tflops)
    results: dict[tuple[str, bool], list[dict]] = {}
    for _ in range(rounds):
        for compiled in settings:
            for model in ("hfgpt", "gpt2"):
                spec = {**shape, "model": model, "compile": compiled, "out": args.out}
                results.setdefault((model, compiled), []).append(run(spec))

    print(f"{device}, torch {__import__('torch').__version__}, {time.strftime('%Y-%m-%d %H:%M')}, "
          f"{shape['preset']} at {shape['length']} tokens x batch {shape['batch']}, median of {rounds} round(s)\n")  # fmt: skip
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
