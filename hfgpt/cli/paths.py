"""Output paths checked before a command does any work: where it will write must be a directory it can write in.

Without these checks a run trains (or a model loads, or a tokenizer learns) and then fails on its first write
with the operating system's words ("afile/sub.partial: Not a directory", "Read-only file system"), naming
neither the option nor the fix. Light: no torch, no transformers.
"""

from __future__ import annotations

import os
from pathlib import Path

from hfgpt.errors import ConfigError, OutputDirError


def _nearest_existing(path: Path) -> Path:
    """`path` or its nearest ancestor that exists (`.` for a relative path none of whose parts exist)."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(".")


def _why_not_writable(directory: Path) -> str | None:
    """Why files cannot be created in the existing `directory`, or None when they can."""
    if os.access(directory, os.W_OK | os.X_OK):
        return None
    try:
        if os.statvfs(directory).f_flag & os.ST_RDONLY:
            return "a read-only file system"
    except OSError:
        pass
    return "no write permission"


def check_output_dir(path: str | os.PathLike, flag: str, *, beside: bool = False) -> Path:
    """Check that the directory `path` (an option's value, `flag`) can be created or written.

    Every part of `path` that exists must be a directory; new entries go into `path` itself, or with `beside`
    (a run staged in a sibling `<path>.partial`, renamed into place) into its parent, which must be writable.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputDirError(f"{flag} {path} exists and is not a directory (a file): choose another {flag}")
    for part in path.parents:
        if part.exists() and not part.is_dir():
            raise OutputDirError(f"{flag} {path}: {part} is a file, not a directory: choose another {flag}")
    targets = [_nearest_existing(path.parent if beside else path)]
    if path.is_dir() and not beside:
        targets = [path]
    for target in targets:
        problem = _why_not_writable(target)
        if problem:
            raise OutputDirError(
                f"{flag} {path}: cannot write in {target} ({problem}): choose another {flag}"
            )
    return path


def check_output_file(path: str | os.PathLike, flag: str) -> Path:
    """Check that the file `path` (an option's value, `flag`) can be written: not empty, not a folder, in an
    existing directory that can be written."""
    text = os.fspath(path)
    if not text.strip():
        raise ConfigError(f"{flag} is empty: name the file to write")
    path = Path(text)
    if path.is_dir():
        raise ConfigError(f"{flag} {path} is a folder: name a file to write in it, e.g. {flag} {path / 'x'}")
    parent = path.parent
    for part in (parent, *parent.parents):
        if part.exists() and not part.is_dir():
            raise ConfigError(f"{flag} {path}: {part} is a file, not a folder: choose another {flag}")
    if not parent.is_dir():
        raise ConfigError(
            f"{flag} {path}: the folder {parent} does not exist: create it or choose another {flag}"
        )
    problem = _why_not_writable(parent)
    if problem:
        raise ConfigError(f"{flag} {path}: cannot write in {parent} ({problem}): choose another {flag}")
    return path


__all__ = ["check_output_dir", "check_output_file"]
