"""LoRA classification fine-tuning, beside full fine-tuning: spam or not, on a pretrained model.

LoRA (low-rank adaptation, through peft: `pip install 'hfgpt[lora]'`) freezes the pretrained model and trains
small rank-r updates of its attention and MLP projections (`qkv`, `out_proj`, `fc`, `proj`) plus the new
classification head. Both runs here start from the same pretrained model (examples/pretrain.py's, trained
first when missing) with the same seed and the same held-out 20% of examples/data/sms_spam.csv; the script
prints, for each, the parameters it trained, the held-out and training accuracy and the time.

The LoRA run saves the adapter (about 130 kB: adapter_config.json, adapter_model.safetensors, the
tokenizer, classifier.json) to --output-dir; the script reloads it from there with peft and classifies two
new messages. `hfgpt.training.lora.merge_lora(adapter_dir, merged_dir)` turns it into an ordinary model.

    python examples/classify_lora.py
    python examples/classify_lora.py --rank 4 --no-full
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from transformers import DataCollatorWithPadding

from hfgpt.training.finetuning import finetune_classifier
from hfgpt.training.lora import load_lora, lora_config

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model-dir", default="runs/example-pretrain", help="pretrained model to adapt")
    parser.add_argument(
        "--csv", default=str(HERE / "data" / "sms_spam.csv"), help="CSV with text,label columns"
    )
    parser.add_argument(
        "--output-dir", default="runs/example-classify-lora", help="where the LoRA adapter is saved"
    )
    parser.add_argument("--epochs", type=float, default=3.0)
    parser.add_argument("--rank", type=int, default=8, help="rank of the LoRA updates")
    parser.add_argument(
        "--alpha", type=float, help="LoRA scale alpha (update times alpha/rank; default 2 x rank)"
    )
    parser.add_argument("--learning-rate", type=float, default=3e-3, help="LoRA's learning rate")
    parser.add_argument("--full-learning-rate", type=float, default=1e-3, help="full fine-tuning's")
    parser.add_argument("--eval-fraction", type=float, default=0.2, help="share of rows held out")
    parser.add_argument("--seed", type=int, default=123)
    parser.add_argument("--no-full", action="store_true", help="skip the full fine-tuning run")
    parser.add_argument("--overwrite", action="store_true", help="replace an adapter already in --output-dir")
    args = parser.parse_args()

    from pretrain import ensure_base_model  # the sibling example script

    ensure_base_model(args.model_dir)
    common = dict(epochs=args.epochs, eval_fraction=args.eval_fraction, seed=args.seed)
    lora = lora_config(rank=args.rank, alpha=args.alpha or 2.0 * args.rank)

    rows = []
    start, cpu = time.perf_counter(), time.process_time()
    adapted = finetune_classifier(
        args.model_dir,
        args.csv,
        args.output_dir,
        learning_rate=args.learning_rate,
        overwrite=args.overwrite,
        lora=lora,
        **common,
    )
    rows.append(
        (f"LoRA r={args.rank}", adapted.metrics, time.perf_counter() - start, time.process_time() - cpu)
    )
    if not args.no_full:
        start, cpu = time.perf_counter(), time.process_time()
        full = finetune_classifier(args.model_dir, args.csv, learning_rate=args.full_learning_rate, **common)
        rows.append(("full", full.metrics, time.perf_counter() - start, time.process_time() - cpu))

    m = adapted.metrics
    print(
        f"\n{'':<10} {'trained parameters':>22} {'held-out acc.':>14} {'train acc.':>11} {'time':>6} {'CPU':>6}"
    )
    for name, metrics, seconds, cpu_seconds in rows:
        share = metrics["trainable_parameters"] / metrics["parameters"]
        trained = f"{metrics['trainable_parameters']:,} ({share:.1%})"
        print(
            f"{name:<10} {trained:>22} {metrics['eval_accuracy']:>14.1%} {metrics['train_accuracy']:>11.1%} "
            f"{seconds:>5.0f}s {cpu_seconds:>5.0f}s"
        )
    print(f"majority class: {m['eval_majority_rate']:.1%} held out, {m['majority_rate']:.1%} in training")

    # The adapter as saved, on the base model peft finds from adapter_config.json.
    model, tok = load_lora(args.output_dir), adapted.tokenizer
    print(f"\nreloaded the adapter from {adapted.output_dir}:")
    messages = ["Congratulations! You have won a free cruise, call now", "Shall we meet at the cafe at noon?"]
    batch = DataCollatorWithPadding(tok)(
        [{"input_ids": tok(text, add_special_tokens=False)["input_ids"]} for text in messages]
    )
    with torch.no_grad():
        predicted = model(**batch).logits.argmax(-1).tolist()
    for text, label in zip(messages, predicted):
        print(f"  {model.config.id2label[label]:>4}  {text}")


if __name__ == "__main__":
    main()
