"""``hfgpt generate``: continue a prompt with a trained model."""

from __future__ import annotations

import argparse

HELP = "continue a prompt with a trained model directory"
DESCRIPTION = """\
Load a model directory (e.g. from `hfgpt train`) with AutoModelForCausalLM/AutoTokenizer and continue
PROMPT. Greedy by default; --temperature > 0 samples, optionally from the --top-k most likely tokens.
The output starts with the prompt.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "model_dir", metavar="DIR", help="a directory written by `hfgpt train` or save_pretrained"
    )
    parser.add_argument("prompt", metavar="PROMPT", help="the text to continue")
    parser.add_argument("--max-new-tokens", type=int, default=50, help="tokens to add to the prompt")
    parser.add_argument("--temperature", type=float, default=0.0, help="0 = greedy; higher = more random")
    parser.add_argument(
        "--top-k", type=int, help="sample only from the k most likely tokens (with --temperature)"
    )
    parser.add_argument(
        "--greedy", action="store_true", help="always pick the most likely token (temperature 0)"
    )
    parser.add_argument("--seed", type=int, help="random seed for sampling")


def run(args: argparse.Namespace) -> int:
    from hfgpt.generation import check_generation_options, generate_text
    from hfgpt.loading import load_causal_lm

    temperature = 0.0 if args.greedy else args.temperature
    check_generation_options(args.max_new_tokens, temperature, args.top_k)
    model, tokenizer = load_causal_lm(args.model_dir)
    print(
        generate_text(model, tokenizer, args.prompt, args.max_new_tokens, temperature, args.top_k, args.seed)
    )
    return 0
