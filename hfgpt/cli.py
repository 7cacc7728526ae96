"""The ``hfgpt`` command line. Each sub-command lives in ``hfgpt.commands.<name>``.

A command module defines ``add_parser(subparsers)``, which adds its parser and sets ``func`` to a
``run(args) -> int`` function. Heavy imports (torch, transformers) stay inside ``run`` so that
``hfgpt --help`` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from hfgpt import __version__

COMMANDS = ("train", "generate", "tokenize", "plugins")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hfgpt",
        description="Build, train and run GPT models with Hugging Face components.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"hfgpt {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"hfgpt.commands.{name}").add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return args.func(args) or 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, FileExistsError) as exc:
        # User errors: the message already says what is wrong and how to fix it.
        print(f"hfgpt {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
