"""``hfgpt tokenize``: run any tokenizer strategy over files and report token counts."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hfgpt.errors import OutputDirError

HELP = "tokenize files with a tokenizer strategy and print token counts"
DESCRIPTION = """\
Tokenize text files with a tokenizer strategy (built-in: regex, gpt2-bpe, bpe; plugins add more, see
`hfgpt plugins`). Strategies that learn a vocabulary (regex, bpe) learn it from the given files.
Prints one line per file with characters and tokens, then the total.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE", help="text files, folders or glob patterns")
    parser.add_argument("--tokenizer", default="gpt2-bpe", help="tokenizer strategy name")
    parser.add_argument("--vocab-size", type=int, help="vocabulary size for strategies that train one (bpe)")
    parser.add_argument("--ids", action="store_true", help="also print the token ids of each file")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument(
        "--save", metavar="DIR", help="save the tokenizer (loadable with AutoTokenizer) to DIR"
    )


def check_save_dir(path: Path) -> None:
    """--save must name a directory that can be created (or exists as one), checked before any work."""
    blocker = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise OutputDirError(
            f"--save {path}: {blocker} is a file, not a directory; choose another --save path"
        )


def run(args: argparse.Namespace) -> int:
    from hfgpt.data.sources import expand_paths, read_text_file
    from hfgpt.plugins import get_tokenizer_class
    from hfgpt.tokenization.strategies import build_tokenizer, check_strategy_options

    options = {"vocab_size": args.vocab_size} if args.vocab_size is not None else {}
    check_strategy_options(args.tokenizer, get_tokenizer_class(args.tokenizer), options)
    if args.save:
        check_save_dir(Path(args.save))
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
