"""``hfgpt plugins``: what is installed and what each plugin registered."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass

from hfgpt.cli.options import add_dataclass_arguments, dataclass_from_namespace
from hfgpt.options import option

KIND_LABELS = {"position_encoding": "position encodings", "tokenizer": "tokenizers"}


HELP = "list installed plugins and the strategies they register"
DESCRIPTION = """\
List the plugins hfgpt loaded: built-ins and distributions that declare an entry point in the group
'hfgpt'. For each: distribution, version, status, and the positional-encoding and tokenizer strategies it
registered. A plugin that failed to load is shown with its error.
"""


@dataclass
class PluginsArguments:
    """Everything `hfgpt plugins` needs."""

    json: bool = option(False, group="output", help="print the listing as JSON")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_dataclass_arguments(parser, PluginsArguments)


def run(namespace: argparse.Namespace) -> int:
    import warnings

    args = dataclass_from_namespace(PluginsArguments, namespace)
    from hfgpt.plugins import list_plugins

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # failures are reported in the listing itself
        entries = list_plugins()
    if args.json:
        print(json.dumps(entries, indent=2))
        return 0
    for entry in entries:
        origin = "built-in" if entry["builtin"] else f"{entry['distribution']} {entry['version']}"
        print(f"{entry['name']}  ({origin})  [{entry['status']}]")
        if entry["status"] == "failed":
            print(f"    error: {entry['error']}")
        for kind, names in entry["registered"].items():
            print(f"    {KIND_LABELS.get(kind, kind)}: {', '.join(names)}")
    return 0
