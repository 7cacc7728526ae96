"""The ``hfgpt`` command line. Each sub-command lives in ``hfgpt.cli.<name>``.

A command module defines ``HELP`` (one line for ``hfgpt --help``), ``DESCRIPTION``, ``add_arguments(parser)``
and ``run(args) -> int``. Heavy imports (torch, transformers) stay inside ``run``, so ``hfgpt --help`` and
``hfgpt <command> --help`` answer without importing them.

Exit status: 0 on success, 2 for a problem the user can fix (an `HFGPTError` or an `OSError`, printed as
one line that names the problem and the fix, no traceback), 1 for an internal error (a bug: traceback).
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys

from hfgpt.errors import HFGPTError
from hfgpt.version import __version__

COMMANDS = ("train", "generate", "eval", "compare", "attention", "tokenize", "plugins", "export")


class ArgumentParser(argparse.ArgumentParser):
    """argparse, with a usage error in one line like every other user error (usage stays in --help)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions as written; an option's default appended to its help, once.

    A help text may describe a computed default itself ("(default: the context length)"), for an option whose
    value is None until the run decides; a command that gives the option a value of its own shows that value
    instead. Options without a value (None, empty, a flag) show none.
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        help_text = action.help or ""
        default = action.default
        if (
            action.option_strings
            and default not in (None, "", [], argparse.SUPPRESS)
            and not isinstance(default, bool)
        ):
            help_text = re.sub(r"\s*\(default: [^()]*(\([^()]*\)[^()]*)*\)", "", help_text)
            help_text += " (default: %(default)s)"
        return help_text


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="hfgpt",
        description="Build, train and run GPT models with Hugging Face components.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"hfgpt {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        command = importlib.import_module(f"hfgpt.cli.{name}")
        sub = subparsers.add_parser(
            name, help=command.HELP, description=command.DESCRIPTION, formatter_class=HelpFormatter
        )
        command.add_arguments(sub)
        sub.set_defaults(func=command.run, command_parser=sub)
    return parser


def describe(exc: BaseException) -> str:
    """One line for a user error: the message, or for an OSError the file and what went wrong with it."""
    if isinstance(exc, OSError) and not isinstance(exc, HFGPTError) and exc.filename:
        return f"{exc.filename}: {exc.strerror or exc}"
    return " ".join(str(exc).split())


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # named by the command they were given to, whose --help lists what it takes
        (args.command_parser if args.command else parser).error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return args.func(args) or 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (HFGPTError, OSError) as exc:
        print(f"hfgpt {args.command}: error: {describe(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
