"""``hfgpt tokenize``: run any tokenizer strategy over files and report token counts."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass

from hfgpt.cli.options import add_dataclass_arguments, dataclass_from_namespace
from hfgpt.cli.paths import check_output_dir
from hfgpt.errors import ConfigError
from hfgpt.options import not_empty, option, positive, validate_fields

HELP = "tokenize files with a tokenizer strategy and print token counts"
DESCRIPTION = """\
Tokenize text files with a tokenizer strategy (built-in: regex, gpt2-bpe, bpe; plugins add more, see
`hfgpt plugins`). Strategies that learn a vocabulary (regex, bpe) learn it from the given files.
Prints one line per file with characters and tokens, then the total.
"""


@dataclass
class TokenizeArguments:
    """Everything `hfgpt tokenize` needs; each field is one command-line argument."""

    files: list[str] = option(
        default_factory=list, positional=True, group="input", help="text files, folders or glob patterns"
    )
    tokenizer: str = option("gpt2-bpe", group="tokenizer", check=not_empty, help="tokenizer strategy name")
    vocab_size: int | None = option(
        None, group="tokenizer", check=positive, help="vocabulary size for strategies that learn one (bpe)"
    )
    tokenizer_options: dict | None = option(
        None,
        group="tokenizer",
        flags=("--tokenizer-options",),
        help="options of the tokenizer strategy as a JSON object, e.g. '{\"vocab_size\": 4000}'",
    )
    ids: bool = option(False, group="output", help="also print the token ids of each file")
    json: bool = option(False, group="output", help="print the result as JSON")
    save: str | None = option(
        None,
        group="output",
        flags=("--save",),
        check=not_empty,
        help="save the tokenizer (loadable with AutoTokenizer) to this directory",
    )

    def __post_init__(self) -> None:
        self.files = list(self.files)
        validate_fields(self)
        if not self.files:
            raise ConfigError("give at least one FILE to tokenize (a text file, folder or glob pattern)")
        if self.save:
            check_output_dir(self.save, "--save")

    def options(self) -> dict:
        """The strategy's options: `--tokenizer-options`, with `--vocab-size` (they must agree)."""
        options = dict(self.tokenizer_options or {})
        if self.vocab_size is not None:
            if options.get("vocab_size", self.vocab_size) != self.vocab_size:
                raise ConfigError(
                    "--vocab-size and --tokenizer-options vocab_size disagree: give one of them"
                )
            options["vocab_size"] = self.vocab_size
        return options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_dataclass_arguments(parser, TokenizeArguments)


def run(namespace: argparse.Namespace) -> int:
    from hfgpt.data.sources import expand_paths, read_text_file
    from hfgpt.plugins import get_tokenizer_class
    from hfgpt.tokenization.strategies import build_tokenizer, check_strategy_options

    args = dataclass_from_namespace(TokenizeArguments, namespace)
    options = args.options()
    check_strategy_options(args.tokenizer, get_tokenizer_class(args.tokenizer), options)
    paths = expand_paths(args.files)
    texts = [read_text_file(path) for path in paths]
    tokenizer = build_tokenizer(args.tokenizer, texts, **options)
    encoded = tokenizer(texts, add_special_tokens=False)["input_ids"]
    rows = [
        {"file": str(path), "characters": len(text), "tokens": len(ids), **({"ids": ids} if args.ids else {})}
        for path, text, ids in zip(paths, texts, encoded)
    ]
    total = {
        "files": len(rows),
        "characters": sum(r["characters"] for r in rows),
        "tokens": sum(r["tokens"] for r in rows),
    }
    if args.save:
        tokenizer.save_pretrained(args.save)
    if args.json:
        print(
            json.dumps(
                {"tokenizer": args.tokenizer, "vocab_size": len(tokenizer), "files": rows, "total": total}
            )
        )
        return 0
    for row in rows:
        print(f"{row['file']}: {row['characters']} characters, {row['tokens']} tokens")
        if args.ids:
            print(" ".join(map(str, row["ids"])))
    print(
        f"total: {total['tokens']} tokens in {total['files']} file(s), vocabulary of {len(tokenizer)} ({args.tokenizer})"
    )
    return 0
