"""Cached greedy generation: hfgpt vs transformers' GPT2LMHeadModel, dynamic cache, static cache, static + compile.

For each model (same size, same random-init seed, sdpa attention) and each setting, `generate(do_sample=False)`
from a fixed prompt; tokens/s counts new tokens only. Settings:

    dynamic          DynamicCache (the default)
    static           cache_implementation="static", no compilation
    static+compile   cache_implementation="static" with transformers' automatic torch.compile of the decoding
                     step (`CompileConfig(fullgraph=True)`; forced on CPU through `_compile_all_devices`)

The (model, setting) runs are interleaved, A B C ... A B C, after one warm-up each (which also pays the
compilation), and the median of `--passes` is reported. hfgpt and GPT-2 must produce the same tokens under
every setting as under the dynamic cache; the script checks that.

    python benchmarks/bench_generation.py             # CPU, a few minutes (compilation included)
    python benchmarks/bench_generation.py --quick     # smoke run
    python benchmarks/bench_generation.py --device cuda
"""

import argparse
import json
import os
import platform
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from transformers import CompileConfig, GPT2Config, GPT2LMHeadModel  # noqa: E402

import hfgpt  # noqa: E402


def compile_everywhere() -> CompileConfig:
    """transformers' default compile settings, with full graph, also on CPU (it compiles only on GPUs otherwise)."""
    config = CompileConfig(fullgraph=True)
    config._compile_all_devices = True  # not an __init__ argument
    return config


SETTINGS = {
    "dynamic": {},
    "static": {"cache_implementation": "static", "disable_compile": True},
    "static+compile": {
        "cache_implementation": "static",
        "compile_config": compile_everywhere(),
    },
}


def build(name: str, size: dict, device: str) -> torch.nn.Module:
    torch.manual_seed(0)
    if name == "hfgpt":
        config = hfgpt.HFGPTConfig(
            vocab_size=size["vocab"],
            context_length=size["context"],
            emb_dim=size["emb"],
            n_heads=size["heads"],
            n_layers=size["layers"],
            drop_rate=0.0,
            qkv_bias=True,
        )
        model = hfgpt.HFGPTForCausalLM._from_config(config, attn_implementation="sdpa")
    else:
        config = GPT2Config(
            vocab_size=size["vocab"],
            n_positions=size["context"],
            n_embd=size["emb"],
            n_head=size["heads"],
            n_layer=size["layers"],
            bos_token_id=size["vocab"] - 1,
            eos_token_id=size["vocab"] - 1,
        )
        model = GPT2LMHeadModel._from_config(config, attn_implementation="sdpa")
    model.generation_config.pad_token_id = 0
    return model.to(device).eval()


def timed_generate(model, prompt: torch.Tensor, new_tokens: int, setting: dict) -> tuple[float, torch.Tensor]:
    if prompt.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(
            prompt,
            attention_mask=torch.ones_like(prompt),
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            do_sample=False,
            **setting,
        )
    if prompt.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny model, few tokens, 2 passes (smoke run)")
    parser.add_argument("--passes", type=int, default=5, help="timed passes per (model, setting)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    args = parser.parse_args()

    if args.quick:
        size, prompt_len, new_tokens, passes = (
            dict(vocab=512, context=128, emb=64, heads=4, layers=2),
            8,
            16,
            2,
        )
    else:
        size, prompt_len, new_tokens, passes = (
            dict(vocab=50257, context=256, emb=256, heads=4, layers=4),
            32,
            128,
            args.passes,
        )
    torch.manual_seed(1)
    prompt = torch.randint(0, size["vocab"], (1, prompt_len), device=args.device)
    models = {name: build(name, size, args.device) for name in ("hfgpt", "gpt2")}
    runs = [(m, s) for s in args.settings for m in models]

    tokens, times = {}, {run: [] for run in runs}
    for model_name, setting in runs:  # warm-up (and compilation); record the tokens
        tokens[model_name, setting] = timed_generate(
            models[model_name], prompt, new_tokens, SETTINGS[setting]
        )[1]
    for _ in range(passes):
        for model_name, setting in runs:
            times[model_name, setting].append(
                timed_generate(models[model_name], prompt, new_tokens, SETTINGS[setting])[0]
            )

    same = {
        f"{m} {s}": bool(torch.equal(tokens[m, s], tokens[m, args.settings[0]]))
        for m, s in runs
        if s != "dynamic"
    }
    report = {
        "device": torch.cuda.get_device_name() if args.device == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "size": size,
        "prompt_tokens": prompt_len,
        "new_tokens": new_tokens,
        "passes": passes,
        "tokens_per_s_median": {
            f"{m} {s}": round(new_tokens / statistics.median(times[m, s]), 1) for m, s in runs
        },
        "same_tokens_as_first_setting": same,
    }
    print(json.dumps(report, indent=2))
    if not all(same.values()):
        raise SystemExit("a setting changed the greedy tokens: see same_tokens_as_first_setting")


if __name__ == "__main__":
    main()
