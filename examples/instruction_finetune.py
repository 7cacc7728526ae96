"""Instruction fine-tuning (Alpaca style) of a saved model, then an answer to an instruction it never saw.

Every entry of examples/data/instructions.json (52 instruction/input/output triples written for this
project) becomes

    Below is an instruction that describes a task. Write a response that appropriately completes the request.

    ### Instruction:
    <instruction>

    ### Input:            (only when the entry has an input)
    <input>

    ### Response:
    <output><|endoftext|>

and the loss covers only `<output><|endoftext|>`: the prompt tokens get label -100. 10% of the entries are
held out; the script prints the response loss on them before and after, and the model's answer to one.
A tiny model learns the format and some of the patterns, not the world: expect imperfect answers.

    python examples/instruction_finetune.py
    python examples/instruction_finetune.py --model-dir runs/verdict --epochs 10
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from hfgpt.data.finetuning import format_alpaca, load_instructions
from hfgpt.generation import generate_text
from hfgpt.training.finetuning import finetune_instructions

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model-dir", default="runs/example-pretrain", help="saved model to start from")
    parser.add_argument("--data", default=str(HERE / "data" / "instructions.json"), help="Alpaca-style JSON")
    parser.add_argument("--output-dir", default="runs/example-instruct", help="where the result is saved")
    parser.add_argument("--epochs", type=float, default=8.0)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--overwrite", action="store_true", help="replace a model already in --output-dir")
    args = parser.parse_args()

    start = time.perf_counter()
    from pretrain import ensure_base_model  # the sibling example script

    ensure_base_model(args.model_dir)

    result = finetune_instructions(
        args.model_dir,
        args.data,
        args.output_dir,
        epochs=args.epochs,
        learning_rate=args.learning_rate,
        overwrite=args.overwrite,
    )
    m = result.metrics
    print(
        f"\nresponse loss on held-out entries: {m['eval_loss_before']:.2f} before, {m['eval_loss']:.2f} after"
    )
    print(
        f"training loss {m['train_loss']:.2f}; saved to {result.output_dir} in {time.perf_counter() - start:.0f} s"
    )

    entry = load_instructions(args.data)[m["held_out"][0]]
    prompt = format_alpaca(entry)
    text = generate_text(result.model, result.tokenizer, prompt, max_new_tokens=20)
    answer = text[len(prompt) :].split(result.tokenizer.eos_token)[0].strip()
    print(
        f"\nheld-out instruction: {entry['instruction']}"
        + (f" Input: {entry['input']}" if entry["input"] else "")
    )
    print(f"expected: {entry['output']!r}\nmodel:    {answer!r}")


if __name__ == "__main__":
    main()
