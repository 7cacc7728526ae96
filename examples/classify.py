"""Classification fine-tuning: spam or not, with HFGPTForSequenceClassification and transformers' Trainer.

The data is examples/data/sms_spam.csv: 225 short text messages written for this project (no real
messages), `text,label` with labels `ham` and `spam`. 20% is held out; the script reports accuracy on it
next to the majority-class rate, the score of always answering the most common label.

By default the model is the "tiny" preset trained from scratch with a word-level tokenizer built from the
training split; `--model-dir` starts from a pretrained causal LM instead (its transformer and tokenizer are
reused, a new classification head reads the last real token).

    python examples/classify.py
    python examples/classify.py --model-dir runs/example-pretrain --epochs 5
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from transformers import DataCollatorWithPadding

from hfgpt import HFGPTConfig
from hfgpt.training.finetuning import finetune_classifier

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--csv", default=str(HERE / "data" / "sms_spam.csv"), help="CSV with text,label columns"
    )
    parser.add_argument(
        "--model-dir", help="pretrained model to start from (default: tiny model from scratch)"
    )
    parser.add_argument("--output-dir", help="save the classifier here (default: not saved)")
    parser.add_argument("--epochs", type=float, default=3.0)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--eval-fraction", type=float, default=0.2, help="share of rows held out")
    parser.add_argument("--overwrite", action="store_true", help="replace a model already in --output-dir")
    args = parser.parse_args()

    start = time.perf_counter()
    source = args.model_dir or HFGPTConfig.from_preset("tiny", drop_rate=0.0)
    result = finetune_classifier(
        source,
        args.csv,
        args.output_dir,
        epochs=args.epochs,
        learning_rate=args.learning_rate,
        eval_fraction=args.eval_fraction,
        overwrite=args.overwrite,
    )
    m = result.metrics
    print(f"\ntrained in {time.perf_counter() - start:.0f} s")
    print(f"held-out accuracy {m['eval_accuracy']:.1%} (majority class: {m['eval_majority_rate']:.1%})")
    print(f"training accuracy {m['train_accuracy']:.1%} (majority class: {m['majority_rate']:.1%})")

    messages = ["Congratulations! You have won a free cruise, call now", "Shall we meet at the cafe at noon?"]
    tok, model = result.tokenizer, result.model.eval()
    batch = DataCollatorWithPadding(tok)(
        [{"input_ids": tok(text, add_special_tokens=False)["input_ids"]} for text in messages]
    )
    with torch.no_grad():
        predicted = model(**{k: v.to(model.device) for k, v in batch.items()}).logits.argmax(-1).tolist()
    for text, label in zip(messages, predicted):
        print(f"  {model.config.id2label[label]:>4}  {text}")


if __name__ == "__main__":
    main()
