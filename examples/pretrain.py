"""Pretrain a tiny GPT on the bundled short story ("The Verdict") with `hfgpt.training.train`.

The defaults finish in under two minutes on a laptop CPU: a byte-level BPE of 1,000 tokens learnt from the
story, the "tiny" preset (2 layers, 4 heads) widened to 64 dimensions, a 128-token context, 15 epochs.
The result is an ordinary Hugging Face model folder (`AutoModelForCausalLM.from_pretrained(output_dir)` loads it once `hfgpt`
is imported) that the fine-tuning examples start from.

    python examples/pretrain.py --output-dir runs/example-pretrain
    python examples/pretrain.py --preset small-cpu --epochs 15   # the real thing: minutes, memorises the story
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from hfgpt.training import TrainArguments, train


def pretrain_base(
    output_dir: str,
    epochs: float = 15.0,
    preset: str = "tiny",
    context_length: int = 128,
    emb_dim: int | None = 64,
    overwrite: bool = False,
):
    """Train the small base model the other examples fine-tune; returns `hfgpt.training.TrainResult`."""
    args = TrainArguments(
        output_dir=output_dir,
        tokenizer="bpe",
        vocab_size=1000,
        preset=preset,
        context_length=context_length,
        drop_rate=0.0,
        emb_dim=emb_dim,
        epochs=epochs,
        batch_size=4,
        learning_rate=2e-3,
        eval_every=20,
        overwrite=overwrite,
        show_progress=False,
        max_new_tokens=20,
    )
    return train(args)


def ensure_base_model(model_dir: str) -> None:
    """Pretrain the base model into `model_dir` unless one is already there (used by the fine-tuning examples)."""
    if not (Path(model_dir) / "config.json").exists():
        print(f"no model in {model_dir}: pretraining a tiny one first (examples/pretrain.py)")
        pretrain_base(model_dir)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--output-dir", default="runs/example-pretrain", help="where the model is saved")
    parser.add_argument("--epochs", type=float, default=15.0, help="passes over the story")
    parser.add_argument("--preset", default="tiny", help="model size preset (tiny, small-cpu, gpt2, ...)")
    parser.add_argument("--context-length", type=int, default=128, help="tokens per training window")
    parser.add_argument(
        "--emb-dim", type=int, help="width of the model (default: 64 for tiny, else the preset's)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace a model already in --output-dir")
    args = parser.parse_args()

    start = time.perf_counter()
    result = pretrain_base(
        args.output_dir,
        args.epochs,
        args.preset,
        args.context_length,
        args.emb_dim or (64 if args.preset == "tiny" else None),
        args.overwrite,
    )
    print(f"\ntrained in {time.perf_counter() - start:.0f} s -> {result.output_dir}")
    print(f"final training loss {result.final_train_loss:.2f}, validation loss {result.final_eval_loss:.2f}")
    print(f"sample: {result.sample!r}")


if __name__ == "__main__":
    main()
