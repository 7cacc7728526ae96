"""Continue pretraining a saved model on another corpus (domain adaptation) with transformers' Trainer.

Starts from `--model-dir` (made by examples/pretrain.py; trained on the fly when missing), keeps its
tokenizer, and trains further on a second text: by default a short story written for this project,
examples/data/the-lighthouse-keeper.txt. Prints the model's loss on that text before and after, and how
the model continues a prompt from the new story.

    python examples/finetune_continue.py
    python examples/finetune_continue.py --model-dir runs/verdict --corpus my_notes/*.txt --epochs 5
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from hfgpt.generation import generate_text
from hfgpt.training.finetuning import continue_pretraining

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model-dir", default="runs/example-pretrain", help="saved model to start from")
    parser.add_argument(
        "--corpus", nargs="+", default=[str(HERE / "data" / "the-lighthouse-keeper.txt")], help="text files"
    )
    parser.add_argument("--output-dir", default="runs/example-continued", help="where the result is saved")
    parser.add_argument("--epochs", type=float, default=10.0)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--prompt", default="The lighthouse stood on")
    parser.add_argument("--overwrite", action="store_true", help="replace a model already in --output-dir")
    args = parser.parse_args()

    start = time.perf_counter()
    from pretrain import ensure_base_model  # the sibling example script

    ensure_base_model(args.model_dir)

    result = continue_pretraining(
        args.model_dir,
        args.corpus,
        args.output_dir,
        epochs=args.epochs,
        learning_rate=args.learning_rate,
        overwrite=args.overwrite,
    )
    print(
        f"\nloss on the new corpus: {result.metrics['loss_before']:.2f} before, {result.metrics['loss_after']:.2f} after"
    )
    print(f"saved to {result.output_dir} in {time.perf_counter() - start:.0f} s")
    print("sample:", repr(generate_text(result.model, result.tokenizer, args.prompt, max_new_tokens=25)))


if __name__ == "__main__":
    main()
