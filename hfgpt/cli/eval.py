"""``hfgpt eval``: loss, perplexity and bits per byte of held-out text, at one or more lengths."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass

from hfgpt.cli.options import add_dataclass_arguments, dataclass_from_namespace
from hfgpt.errors import ConfigError
from hfgpt.options import MODEL_DIR_HELP, argument, not_empty, option, validate_fields

HELP = "report loss, perplexity and bits per byte of a model directory on held-out text"
DESCRIPTION = """\
Load a model directory (e.g. from `hfgpt train`) and score held-out text: the CORPUS files (text files,
folders, globs, JSON/Parquet/CSV or a save_to_disk directory; default: the bundled story, which a model
trained on it has seen). Documents are tokenized with the model's own tokenizer and joined with its EOS,
as for training; every token but the first is scored exactly once, at every length.

Protocols: windows of LENGTH input tokens, each position predicting the next token. Without --stride the
windows do not overlap. With --stride N they start every N tokens and each scores only the tokens no
earlier window scored, so every token but those of the first window is predicted from at least
LENGTH - N + 1 tokens of context (transformers' perplexity guide, on windows of LENGTH + 1 tokens).

Numbers: loss = mean cross-entropy in nats per scored token; perplexity = exp(loss); bits per byte =
the summed cross-entropy in bits divided by the UTF-8 bytes of every document that has a token, counted
in full (the first token's bytes included, though it is not scored, as lm-evaluation-harness counts
whole documents); the EOS tokens between documents are scored and count no bytes.

A length the model's positions cannot encode (`learned` past its context length) is reported as such and
not run; a length longer than the text scores the text once. The model runs on cuda when a GPU is
available (--cpu: on the CPU), else on the CPU.
"""


def _positive(value) -> str | None:
    return None if value > 0 else "must be a positive integer"


@dataclass
class EvalArguments:
    """Everything `hfgpt eval` needs; each field is one command-line argument."""

    model_dir: str = argument("DIR", MODEL_DIR_HELP)
    corpus: list[str] = option(
        default_factory=list,
        positional=True,
        group="input",
        help="held-out text: files, folders, globs, JSON/Parquet/CSV or a save_to_disk directory (default: the "
        "bundled story)",
    )
    text_column: str = option("text", group="input", check=not_empty, help="the column holding the text")
    skip_bad_files: bool = option(
        False,
        group="input",
        help="skip files that are not UTF-8 text and rows without text (counted) instead of stopping",
    )
    lengths: str | None = option(
        None,
        group="evaluation",
        help="comma-separated input tokens per window, e.g. 256,512,1024 (default: the model's context length)",
    )
    stride: int | None = option(
        None,
        group="evaluation",
        check=_positive,
        help="tokens between window starts, at most the smallest length (default: non-overlapping windows)",
    )
    batch_size: int = option(8, group="evaluation", check=_positive, help="windows per forward pass")
    max_tokens: int | None = option(
        None,
        group="evaluation",
        check=_positive,
        help="score only the text's first N tokens (bits per byte is then not reported) (default: all of them)",
    )
    position_options: dict | None = option(
        None,
        group="evaluation",
        flags=("--position-options",),
        help="options of the model's positional strategy for this evaluation, merged into the saved ones, "
        'e.g. \'{"scaling": "yarn", "factor": 4}\' to stretch a rope model to 4x its training length '
        "(scalings: linear, ntk, yarn; see docs/positional-encodings.md)",
    )
    json: bool = option(
        False,
        group="output",
        help="print a JSON list, one object per length: length, stride, tokens, bytes, loss, perplexity, "
        "bits_per_byte, encodable, reason (the numbers are null for a length that cannot be encoded)",
    )
    show_progress: bool = option(True, group="output", negative_flag="--no-progress", help="no progress bars")
    cpu: bool = option(False, group="output", help="run on the CPU even when a GPU is present")

    def __post_init__(self) -> None:
        from hfgpt.evaluation import check_eval_options

        self.corpus = list(self.corpus)
        validate_fields(self)
        check_eval_options(self.length_list(), self.stride, self.batch_size)

    def length_list(self) -> list[int] | None:
        """`"256,512"` -> `[256, 512]`; None stays None (the model's context length)."""
        if self.lengths is None:
            return None
        try:
            lengths = [int(item.strip()) for item in self.lengths.split(",")]
        except ValueError:
            lengths = None
        if not lengths or any(length <= 0 for length in lengths):
            raise ConfigError(
                f"--lengths must be a comma-separated list of positive integers (e.g. 256,512), got {self.lengths!r}"
            )
        return lengths


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_dataclass_arguments(parser, EvalArguments)


def context_length(model) -> int:
    config = model.config
    length = getattr(config, "context_length", None) or getattr(config, "max_position_embeddings", None)
    if not length:
        raise ConfigError("the model's config names no context length: pass --lengths")
    return int(length)


def format_table(results: list) -> str:
    lines = [f"{'length':>8} {'stride':>8} {'tokens':>9} {'loss':>8} {'perplexity':>12} {'bits/byte':>10}"]
    for r in results:
        if not r.encodable:
            lines.append(f"{r.length:>8} {r.stride:>8} {'-':>9}  not evaluated: {r.reason}")
            continue
        bpb = f"{r.bits_per_byte:.4f}" if r.bits_per_byte is not None else "-"
        lines.append(
            f"{r.length:>8} {r.stride:>8} {r.tokens:>9} {r.loss:>8.4f} {r.perplexity:>12.3f} {bpb:>10}"
        )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from hfgpt.data.sources import load_corpus
    from hfgpt.evaluation import check_eval_options, default_device, eval_stream, evaluate
    from hfgpt.loading import check_model_dir, check_tokenizer_dir, load_causal_lm
    from hfgpt.quiet import quiet

    options = dataclass_from_namespace(EvalArguments, args)
    check_tokenizer_dir(
        check_model_dir(options.model_dir)
    )  # a damaged directory fails before the corpus loads
    with quiet(not options.show_progress):
        corpus = load_corpus(
            options.corpus,
            text_column=options.text_column,
            skip_bad_files=options.skip_bad_files,
            report=lambda line: print(line, file=sys.stderr),
        )
        model, tokenizer = load_causal_lm(options.model_dir, options.position_options)
        lengths = check_eval_options(
            options.length_list() or [context_length(model)], options.stride, options.batch_size
        )
        stream = eval_stream(tokenizer, corpus, options.text_column)
        device = "cpu" if options.cpu else default_device()
        results = evaluate(
            model.to(device),
            tokenizer,
            stream,
            lengths,
            options.stride,
            options.batch_size,
            progress=options.show_progress,
            max_tokens=options.max_tokens,
        )
    if options.json:
        print(json.dumps([result.to_dict() for result in results]))
        return 0
    print(
        f"{options.model_dir}: {stream.documents} document(s), {stream.n_tokens} tokens, {stream.n_bytes} bytes, "
        f"on {device}"
    )
    print(format_table(results))
    return 0
