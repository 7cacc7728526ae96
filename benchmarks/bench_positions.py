"""Forward time of a 12-layer model by positional strategy, and what preparing RoPE's tables once per forward saves.

`HFGPTModel.forward` asks the strategy to `prepare` its per-position tables once (RoPE's cos and sin) and hands
them to every layer; `per-layer rope` is the same model with the tables recomputed in every layer's `rotate`
(how RoPE worked before). Side by side in one process, interleaved round by round, median of `--rounds`:
GPT-2's shape (12 layers x 768, 12 heads) at `--seq` tokens, batch `--batch`, eval mode, no gradient.

    python benchmarks/bench_positions.py            # 7 rounds, seq 256, batch 2
    python benchmarks/bench_positions.py --quick    # smoke run: 2 layers x 64, 2 rounds
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from machine import cpu_model  # noqa: E402

from hfgpt import HFGPTConfig, HFGPTForCausalLM  # noqa: E402
from hfgpt.position_encoding import RotaryPositionEncoding  # noqa: E402


class PerLayerRotary(RotaryPositionEncoding):
    """RoPE whose tables are recomputed in every layer: `prepare` hands the positions on, `rotate` builds them."""

    def prepare(self, position_ids):
        return position_ids

    def rotate(self, query, key, prepared):
        return super().rotate(query, key, super().prepare(prepared))


def build(strategy: str, layers: int, width: int, heads: int) -> HFGPTForCausalLM:
    torch.manual_seed(0)
    position = "rope" if strategy == "per-layer rope" else strategy
    config = HFGPTConfig.from_preset(
        "gpt2", n_layers=layers, emb_dim=width, n_heads=heads, position_encoding=position, context_length=1024
    )
    model = HFGPTForCausalLM(config).eval()
    if strategy == "per-layer rope":
        encoding = PerLayerRotary(config)
        encoding.load_state_dict(model.transformer.position_encoding.state_dict())
        model.transformer.position_encoding = encoding
    return model


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="smoke run: a small model, 2 rounds")
    args = parser.parse_args(argv)
    layers, width, heads = (2, 64, 4) if args.quick else (12, 768, 12)
    rounds = 2 if args.quick else args.rounds
    strategies = ["rope", "per-layer rope", "learned", "none"]
    models = {name: build(name, layers, width, heads) for name in strategies}
    ids = torch.randint(0, 50257, (args.batch, args.seq))
    with torch.no_grad():
        reference = models["rope"](ids).logits
        assert torch.allclose(models["per-layer rope"](ids).logits, reference, atol=1e-5), (
            "the variants differ"
        )
        times = {name: [] for name in strategies}
        for _ in range(rounds):
            for name, model in models.items():
                start = time.perf_counter()
                model(ids)
                times[name].append(time.perf_counter() - start)
    median = {name: statistics.median(values) for name, values in times.items()}
    load = os.getloadavg()
    print(
        f"{cpu_model()}, {torch.get_num_threads()} threads, load {load[0]:.1f}; {layers} layers x {width}, "
        f"batch {args.batch} x {args.seq} tokens, median of {rounds}"
    )
    for name in strategies:
        print(f"  {name:15} {median[name] * 1000:8.1f} ms")
    print(
        f"  rope (tables once per forward) / per-layer rope: {median['rope'] / median['per-layer rope']:.3f}x"
    )


if __name__ == "__main__":
    main()
