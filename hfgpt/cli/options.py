"""Command-line options generated from a dataclass of `hfgpt.training.arguments.option()` fields.

Each field becomes one option in its group, with its help text and default (shown by the CLI's help
formatter); the parsed namespace is
turned back into the dataclass, whose own validation then checks every value. Light: no torch, no
transformers.
"""

from __future__ import annotations

import argparse
import typing
from dataclasses import MISSING, fields
from typing import Any


def _value_type(annotation: Any) -> Any:
    """`int` for `int | None`, `str` for `list[str]` (or `list[str] | None`), the annotation itself otherwise."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) is list:
        return args[0]
    inner = args[0] if args else annotation
    return typing.get_args(inner)[0] if typing.get_origin(inner) is list else inner


def _is_list(annotation: Any) -> bool:
    """Whether a field holds a list of values (`list[str]`, `list[str] | None`)."""
    return any(typing.get_origin(a) is list for a in (annotation, *typing.get_args(annotation)))


def _default(f) -> Any:
    if f.default is MISSING and f.default_factory is MISSING:
        return MISSING
    return f.default_factory() if f.default is MISSING else f.default


def add_dataclass_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    """Add one option per field of `cls` to `parser`, grouped by each field's `group`."""
    groups: dict[str, argparse._ArgumentGroup] = {}
    hints = typing.get_type_hints(cls)
    for f in fields(cls):
        meta, default = f.metadata, _default(f)
        group = groups.setdefault(meta["group"], parser.add_argument_group(meta["group"]))
        help_text = meta["help"]
        kind = _value_type(hints[f.name])
        if meta.get("positional"):
            if _is_list(hints[f.name]):
                group.add_argument(f.name, nargs="*", default=default, help=help_text)
            else:  # one value, shown in usage as its `flags[0]` (`DIR`); optional when the field has a default
                optional = {} if default is MISSING else dict(nargs="?", default=default)
                metavar = (meta.get("flags") or (None,))[0]
                group.add_argument(f.name, metavar=metavar, help=help_text, **optional)
            continue
        flags = meta.get("flags") or (f"--{f.name.replace('_', '-')}",)
        if _is_list(hints[f.name]):  # given once per value: `--stop A --stop B`
            group.add_argument(
                *flags, dest=f.name, action="append", type=kind, default=default, help=help_text
            )
            continue
        if kind is bool:
            if default:
                group.add_argument(meta["negative_flag"], dest=f.name, action="store_false", help=help_text)
            else:
                group.add_argument(*flags, dest=f.name, action="store_true", help=help_text)
            continue
        group.add_argument(
            *flags, dest=f.name, type=kind, default=default, choices=meta.get("choices"), help=help_text
        )


def dataclass_from_namespace(cls: type, namespace: argparse.Namespace):
    """The dataclass built from the parsed options (it validates itself)."""
    return cls(**{f.name: getattr(namespace, f.name) for f in fields(cls)})


__all__ = ["add_dataclass_arguments", "dataclass_from_namespace"]
