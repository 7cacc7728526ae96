"""``hfgpt eval``: loss, perplexity and bits per byte of held-out text, at one or more lengths."""

from __future__ import annotations

import argparse
import json

from hfgpt.errors import ConfigError

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
whole documents); the EOS tokens between documents are scored and count no bytes. A length the model's positions cannot encode (`learned` past its context length) is reported as
such and not run. The model runs on cuda when a GPU is available, else on the CPU.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "model_dir", metavar="DIR", help="a directory written by `hfgpt train` or save_pretrained"
    )
    parser.add_argument(
        "corpus", nargs="*", metavar="CORPUS", help="held-out text (default: the bundled story)"
    )
    parser.add_argument(
        "--lengths",
        help="comma-separated input tokens per window, e.g. 256,512,1024 (default: the model's context length)",
    )
    parser.add_argument(
        "--stride",
        type=int,
        help="tokens between window starts, at most the smallest length (default: non-overlapping windows)",
    )
    parser.add_argument("--batch-size", type=int, default=8, help="windows per forward pass")
    parser.add_argument(
        "--position-options",
        metavar="JSON",
        help="options of the model's positional strategy for this evaluation, merged into the saved ones, "
        'e.g. \'{"scaling": "yarn", "factor": 4}\' to stretch a rope model to 4x its training length '
        "(scalings: linear, ntk, yarn; see docs/positional-encodings.md)",
    )
    parser.add_argument(
        "--text-column", default="text", help="the column holding the text in structured files"
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print a JSON list, one object per length: length, stride, tokens, bytes, loss, perplexity, "
        "bits_per_byte, encodable, reason (the numbers are null for a length that cannot be encoded)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def parse_lengths(text: str | None) -> list[int] | None:
    """`"256,512"` -> `[256, 512]`; None stays None (the model's context length). Anything else is an error."""
    if text is None:
        return None
    items = [item.strip() for item in text.split(",")]
    try:
        lengths = [int(item) for item in items]
    except ValueError:
        lengths = None
    if not lengths or any(length <= 0 for length in lengths):
        raise ConfigError(
            f"--lengths must be a comma-separated list of positive integers (e.g. 256,512), got {text!r}"
        )
    return lengths


def parse_position_options(text: str | None) -> dict | None:
    """`--position-options` as a dict: a JSON object, or an error naming the problem."""
    if text is None:
        return None
    try:
        options = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--position-options must be a JSON object, e.g. '{{\"scaling\": \"yarn\", "
                          f"\"factor\": 4}}': {exc.msg} in {text!r}") from None  # fmt: skip
    if not isinstance(options, dict):
        raise ConfigError(f"--position-options must be a JSON object ({{...}}), got {text!r}")
    return options


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
    from hfgpt.evaluation import check_eval_options

    lengths = check_eval_options(parse_lengths(args.lengths), args.stride, args.batch_size)
    position_options = parse_position_options(args.position_options)
    from hfgpt.data.sources import load_corpus
    from hfgpt.evaluation import default_device, eval_stream, evaluate
    from hfgpt.loading import check_model_dir, check_tokenizer_dir, load_causal_lm

    check_tokenizer_dir(check_model_dir(args.model_dir))  # a damaged directory fails before the corpus loads
    corpus = load_corpus(args.corpus, text_column=args.text_column)
    model, tokenizer = load_causal_lm(args.model_dir, position_options)
    lengths = check_eval_options(lengths or [context_length(model)], args.stride, args.batch_size)
    stream = eval_stream(tokenizer, corpus, args.text_column)
    device = default_device()
    results = evaluate(
        model.to(device),
        tokenizer,
        stream,
        lengths,
        args.stride,
        args.batch_size,
        progress=not args.no_progress,
    )
    if args.json:
        print(json.dumps([result.to_dict() for result in results]))
        return 0
    print(
        f"{args.model_dir}: {stream.documents} document(s), {stream.n_tokens} tokens, {stream.n_bytes} bytes, "
        f"on {device}"
    )
    print(format_table(results))
    return 0
