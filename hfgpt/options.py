"""Options defined once, as dataclass fields: the library's argument dataclasses and every command line.

`option()` makes a dataclass field that is also a command-line option: its metadata holds the help text, the
group in `--help`, the flags and the check its value must pass. `hfgpt.cli.options` generates a command's
parser from such a dataclass, and the dataclass validates itself (`validate_fields`), so a bad value is
refused, naming the option, before any work starts. Light: no torch, no transformers.
"""

from __future__ import annotations

import json
import math
import typing
from dataclasses import MISSING, field, fields
from typing import Any

from hfgpt.errors import ConfigError


# --- checks: each returns what is wrong with a value, or None ---------------------------------------------
def positive(value) -> str | None:
    return None if value > 0 else "must be positive"


def non_negative(value) -> str | None:
    return None if value >= 0 else "must be 0 or more"


def fraction(value) -> str | None:
    return None if 0 < value < 1 else "must be between 0 and 1 (exclusive)"


def probability(value) -> str | None:
    return None if 0 <= value < 1 else "must be in [0, 1)"


def not_empty(value) -> str | None:
    return None if value.strip() else "must not be empty"


def option(
    default: Any = MISSING,
    *,
    help: str,
    group: str,
    flags: tuple[str, ...] = (),
    check=None,
    choices: tuple[str, ...] | None = None,
    positional: bool = False,
    negative_flag: str | None = None,
    preset_override: bool = False,
    run_only: bool = False,
    default_factory: Any = MISSING,
):
    """A dataclass field that is also a command-line option (see `hfgpt.cli.options`).

    Args:
        help: the option's help text; "(default: ...)" is appended for non-None defaults.
        group: the section of `--help` it is listed under.
        flags: its command-line flags; default `--field-name`.
        check: a function returning what is wrong with a (well-typed, not None) value, or None.
        choices: the allowed values.
        positional: a positional argument taking any number of values (a list field).
        negative_flag: for a bool that defaults to True, the flag that turns it off (`--no-progress`).
        preset_override: a model field that replaces the size preset's value when given (see `preset_override`).
        run_only: the option says how a run is carried out (where, how fast, what it prints), not what it
            computes: runs that differ only in such options train the same model.
    """
    metadata = dict(
        help=help,
        group=group,
        flags=flags,
        check=check,
        choices=choices,
        positional=positional,
        negative_flag=negative_flag,
        preset_override=preset_override,
        run_only=run_only,
    )
    return field(default=default, default_factory=default_factory, metadata=metadata)


def argument(name: str, help: str, check=not_empty, group: str = "input"):
    """A positional command-line argument holding one value, shown as `name` (`DIR`, `PROMPT`)."""
    return option(positional=True, flags=(name,), group=group, check=check, help=help)


MODEL_DIR_HELP = (
    "a model directory written by `hfgpt train`, `hfgpt compare` or save_pretrained (GPT-2's too)"
)


def json_object(text: str) -> dict:
    """A command-line value that is a JSON object, or a `ValueError` saying what is wrong with it."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"must be a JSON object ({{...}}): {exc.msg} at character {exc.pos} of {text!r}"
        ) from None
    if not isinstance(value, dict):
        raise ValueError(f"must be a JSON object ({{...}}), got {type(value).__name__} {text!r}")
    return value


def flag_of(f) -> str:
    """The flag a user types for field `f`, for messages; a positional argument by its name in the usage line
    (`DIR`, `TEXT`), where it has one."""
    if f.metadata.get("positional"):
        return (f.metadata.get("flags") or (f.name,))[0]
    return (f.metadata.get("flags") or (f"--{f.name.replace('_', '-')}",))[0]


def _type_error(value, annotation) -> str | None:
    """What is wrong with the type of `value` for a field annotated `annotation`, or None."""
    args = typing.get_args(annotation)
    if type(None) in args:
        if value is None:
            return None
        annotation = next(a for a in args if a is not type(None))
    origin = typing.get_origin(annotation)
    if origin is list:
        ok = isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)
        return None if ok else "must be a list of strings"
    if annotation is bool:
        return None if isinstance(value, bool) else "must be true or false"
    if annotation is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        return None if ok else "must be an integer"
    if annotation is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        return None if ok else "must be a finite number"
    if annotation is str:
        return None if isinstance(value, str) else "must be a string"
    if annotation is dict:
        return None if isinstance(value, dict) else "must be a JSON object ({...})"
    return None


def field_problem(f, value, annotation) -> str | None:
    """What is wrong with `value` for the `option()` field `f` annotated `annotation` (its type, its choices,
    then its check), or None."""
    problem = _type_error(value, annotation)
    if problem is None and value is not None:
        choices = f.metadata.get("choices")
        if choices and value not in choices:
            problem = f"must be one of {', '.join(choices)}"
        elif f.metadata.get("check") is not None:
            problem = f.metadata["check"](value)
    return problem


def field_default(f) -> Any:
    """The default of dataclass field `f` (its factory's value for a list option); `MISSING` when it has none."""
    if f.default is MISSING and f.default_factory is MISSING:
        return MISSING
    return f.default_factory() if f.default is MISSING else f.default


def fill_defaults(instance, values: dict[str, Any]) -> None:
    """Give each field of `instance` that still holds its default the value in `values` (a recipe's, a config
    file's).

    "Still holds its default" is judged by value, as the command line cannot tell `--epochs 40` from no
    `--epochs` at all: an option given explicitly *at its default value* takes the value in `values` too.
    """
    for f in fields(instance):
        if f.name in values and getattr(instance, f.name) == field_default(f):
            setattr(instance, f.name, values[f.name])


def validate_fields(instance) -> None:
    """Check every field of a dataclass built with `option()`: type, choices, then its check."""
    hints = typing.get_type_hints(type(instance))
    for f in fields(instance):
        value = getattr(instance, f.name)
        if problem := field_problem(f, value, hints[f.name]):
            raise ConfigError(f"{flag_of(f)} {problem}, got {value!r}")


__all__ = [
    "field_default",
    "field_problem",
    "fill_defaults",
    "flag_of",
    "MODEL_DIR_HELP",
    "argument",
    "fraction",
    "json_object",
    "non_negative",
    "not_empty",
    "option",
    "positive",
    "probability",
    "validate_fields",
]
