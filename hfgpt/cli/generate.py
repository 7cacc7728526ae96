"""``hfgpt generate``: continue a prompt with a trained model."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

from hfgpt.cli.options import add_dataclass_arguments, dataclass_from_namespace
from hfgpt.errors import ConfigError
from hfgpt.options import MODEL_DIR_HELP, argument, non_negative, option, validate_fields

HELP = "continue a prompt with a trained model directory"
DESCRIPTION = """\
Load a model directory (from `hfgpt train`, or any causal LM saved with save_pretrained, GPT-2 included)
with AutoModelForCausalLM/AutoTokenizer and continue PROMPT (`-`: read it from standard input). Greedy by
default; --temperature > 0 samples, optionally from the --top-k most likely tokens or the smallest set
holding --top-p of the probability. Each text starts with the prompt, and ends before the first --stop
string. On a terminal the text appears as it is generated.

A model with a fixed context (`learned` positions, GPT-2) continues past it from its last N tokens, as
the book's generate_text_simple does; other positional strategies take any length.
"""


def _positive_integer(value) -> str | None:
    return None if value > 0 else "must be a positive integer"


def _not_empty_strings(values) -> str | None:
    return None if all(values) else "takes non-empty strings"


@dataclass
class GenerateArguments:
    """Everything `hfgpt generate` needs; each field is one command-line argument (see `hfgpt generate --help`).

    Args:
        model_dir: the model directory.
        prompt: the text to continue; `-` reads it from standard input.
        max_new_tokens, temperature, top_k, top_p, repetition_penalty, num_return_sequences, stop, greedy:
            the decoding options (see `hfgpt.generation.generate_texts`).
        stream: write the text as it is generated (on a terminal, for one sequence).
        seed, cpu: the random seed for sampling; run on the CPU even when a GPU is present.
    """

    model_dir: str = argument("DIR", MODEL_DIR_HELP)
    prompt: str = argument(
        "PROMPT",
        "the text to continue; - reads it from standard input (one final newline dropped)",
        check=None,
    )
    max_new_tokens: int = option(
        50, group="decoding", check=_positive_integer, help="tokens to add to the prompt"
    )
    temperature: float | None = option(
        None,
        group="decoding",
        help="sample with this temperature (higher = more random); 0 or absent = greedy",
    )
    top_k: int | None = option(
        None, group="decoding", check=_positive_integer, help="sample only from the k most likely tokens"
    )
    top_p: float | None = option(
        None,
        group="decoding",
        help="sample only from the most likely tokens whose probabilities add up to p (nucleus sampling)",
    )
    repetition_penalty: float | None = option(
        None, group="decoding", help="> 1 makes tokens already in the text less likely (1 = none)"
    )
    num_return_sequences: int = option(
        1, group="decoding", check=_positive_integer, help="texts to sample from the prompt"
    )
    stop: list[str] | None = option(
        None,
        group="decoding",
        check=_not_empty_strings,
        help="end the text before this string; repeat for several (a newline: --stop $'\\n' in bash)",
    )
    greedy: bool = option(False, group="decoding", help="always pick the most likely token (the default)")
    stream: bool = option(
        True,
        group="output",
        negative_flag="--no-stream",
        help="print the whole text at the end instead of as it is generated (streaming is on for one "
        "sequence on a terminal)",
    )
    seed: int | None = option(None, group="run", check=non_negative, help="random seed for sampling")
    cpu: bool = option(False, group="run", help="run on the CPU even when a GPU is present")

    def __post_init__(self) -> None:
        from hfgpt.generation import check_generation_options, check_prompt, check_temperature

        if self.temperature is not None:  # its own message, for NaN too
            check_temperature(self.temperature)
        validate_fields(self)
        if self.prompt != "-":
            check_prompt(self.prompt)
        if self.greedy and self.temperature is not None:
            raise ConfigError(
                "--greedy and --temperature contradict each other: drop --greedy to sample, or --temperature "
                "to decode greedily"
            )
        check_generation_options(
            self.max_new_tokens,
            self.sampling_temperature,
            self.top_k,
            top_p=self.top_p,
            repetition_penalty=self.repetition_penalty,
            num_return_sequences=self.num_return_sequences,
            stop=self.stop or (),
        )
        if self.seed is not None and not self.sampling_temperature:
            raise ConfigError(
                "--seed only affects sampling, and decoding is greedy: add --temperature or drop --seed"
            )

    @property
    def sampling_temperature(self) -> float:
        """The temperature to sample with; 0 for greedy decoding."""
        return self.temperature or 0.0

    def read_prompt(self, stdin=None) -> str:
        """The prompt: the argument, or standard input for `-` (one final newline dropped, as `echo` adds)."""
        from hfgpt.generation import check_prompt

        if self.prompt != "-":
            return self.prompt
        stdin = sys.stdin if stdin is None else stdin
        try:
            text = stdin.read()
        except UnicodeDecodeError as exc:
            raise ConfigError(
                f"standard input is not UTF-8 text ({exc.reason}): pass the prompt as text"
            ) from None
        text = text[:-2] if text.endswith("\r\n") else text[:-1] if text.endswith("\n") else text
        check_prompt(text)
        return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_dataclass_arguments(parser, GenerateArguments)


def run(args: argparse.Namespace) -> int:
    options = dataclass_from_namespace(GenerateArguments, args)
    prompt = options.read_prompt()
    import torch

    from hfgpt.generation import generate_texts
    from hfgpt.loading import load_causal_lm

    model, tokenizer = load_causal_lm(options.model_dir)
    if not options.cpu and torch.accelerator.is_available():
        model.to(torch.accelerator.current_accelerator())
    stream = options.stream and options.num_return_sequences == 1 and sys.stdout.isatty()
    texts = generate_texts(
        model,
        tokenizer,
        prompt,
        options.max_new_tokens,
        options.sampling_temperature,
        options.top_k,
        options.seed,
        top_p=options.top_p,
        repetition_penalty=options.repetition_penalty,
        num_return_sequences=options.num_return_sequences,
        stop=options.stop or (),
        stream=sys.stdout if stream else None,
        note=lambda message: print(f"hfgpt generate: {message}", file=sys.stderr),
    )
    if stream:
        print()
        return 0
    for number, text in enumerate(texts, 1):
        if len(texts) > 1:
            print(f"--- {number}/{len(texts)} ---")
        print(text)
    return 0
