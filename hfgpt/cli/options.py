"""Command-line options generated from dataclasses of `hfgpt.options.option()` fields.

Each field becomes one option in its group, with its help text and default (shown by the CLI's help
formatter); the parsed namespace is turned back into the dataclass, whose own validation then checks every
value. A command may take several dataclasses (`hfgpt compare`: the training arguments and its own), give a
dataclass's fields other defaults, and leave out the fields it sets itself. Light: no torch, no transformers.
"""

from __future__ import annotations

import argparse
import typing
from collections.abc import Collection
from dataclasses import MISSING, fields
from typing import Any

from hfgpt.options import field_default, json_object


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


def _json_object(text: str) -> dict:
    try:
        return json_object(text)
    except ValueError as exc:  # argparse names the option: "argument --position-options: must be ..."
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_dataclass_arguments(
    parser: argparse.ArgumentParser,
    cls: type,
    defaults: dict[str, Any] | None = None,
    exclude: Collection[str] = (),
    helps: dict[str, str] | None = None,
) -> None:
    """Add one option per field of `cls` to `parser`, grouped by each field's `group`.

    `defaults` replaces fields' defaults for this command, `helps` their help texts where the command gives
    them another meaning; `exclude` names fields the command sets itself.
    """
    groups = {group.title: group for group in parser._action_groups}
    hints = typing.get_type_hints(cls)
    defaults = defaults or {}
    for f in fields(cls):
        if f.name in exclude:
            continue
        meta, default = f.metadata, defaults.get(f.name, field_default(f))
        if meta["group"] not in groups:
            groups[meta["group"]] = parser.add_argument_group(meta["group"])
        group = groups[meta["group"]]
        help_text = (helps or {}).get(f.name, meta["help"])
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
            *flags,
            dest=f.name,
            type=_json_object if kind is dict else kind,
            metavar="JSON" if kind is dict else None,
            default=default,
            choices=meta.get("choices"),
            help=help_text,
        )


def dataclass_from_namespace(cls: type, namespace: argparse.Namespace, **fixed: Any):
    """The dataclass built from the parsed options and the `fixed` values of excluded fields (it validates
    itself); excluded fields not in `fixed` keep their defaults."""
    given = {f.name: getattr(namespace, f.name) for f in fields(cls) if hasattr(namespace, f.name)}
    return cls(**{**given, **fixed})


__all__ = ["add_dataclass_arguments", "dataclass_from_namespace"]
