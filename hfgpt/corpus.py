"""Reading a text corpus from files, globs and folders, with errors that say what to fix."""

from __future__ import annotations

import codecs
import glob
import os
from collections.abc import Iterable
from pathlib import Path

DEFAULT_CORPUS = Path(__file__).resolve().parent.parent / "examples" / "data" / "the-verdict.txt"


def default_corpus_path() -> Path:
    """The bundled default corpus, Edith Wharton's "The Verdict" (public domain, 20,479 characters)."""
    for candidate in (Path(__file__).resolve().parent / "data" / "the-verdict.txt", DEFAULT_CORPUS):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError("the bundled corpus the-verdict.txt is missing: reinstall hfgpt")


def expand_paths(patterns: Iterable[str | os.PathLike]) -> list[Path]:
    """Files named by paths, globs or folders (folders are searched recursively for *.txt)."""
    files: list[Path] = []
    for pattern in patterns:
        pattern = str(pattern)
        if os.path.isdir(pattern):
            found = sorted(Path(pattern).rglob("*.txt"))
        elif glob.has_magic(pattern):
            found = sorted(Path(p) for p in glob.glob(pattern, recursive=True) if os.path.isfile(p))
        else:
            found = [Path(pattern)]
        if not found:
            raise FileNotFoundError(f"no files match {pattern[:200]!r}: check the path or the glob pattern")
        files.extend(found)
    return files


def _read_bytes(path: Path, limit: int = -1) -> bytes:
    if not path.is_file():
        raise FileNotFoundError(f"corpus file {path} does not exist")
    try:
        with open(path, "rb") as f:
            return f.read(limit)
    except OSError as exc:
        raise ValueError(f"cannot read corpus file {path}: {exc.strerror}; check its permissions") from None


def _decode(path: Path, data: bytes, final: bool) -> str:
    if b"\x00" in data[:8192]:
        raise ValueError(
            f"corpus file {path} looks binary (it contains NUL bytes): pass plain UTF-8 text files"
        )
    try:
        return codecs.getincrementaldecoder("utf-8")().decode(data, final=final)
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"corpus file {path} is not UTF-8 text (bad byte at offset {exc.start}): convert it, e.g. "
            f"`iconv -t utf-8 {path}`, or leave it out"
        ) from None


def check_text_file(path: str | os.PathLike) -> None:
    """Raise a clear error unless the file exists, is readable and starts like UTF-8 text (reads 64 KiB)."""
    path = Path(path)
    _decode(path, _read_bytes(path, 65536), final=False)


def read_text_file(path: str | os.PathLike) -> str:
    """A UTF-8 text file's contents; a missing, unreadable or binary file is a clear error."""
    path = Path(path)
    return _decode(path, _read_bytes(path), final=True)


def read_texts(patterns: Iterable[str | os.PathLike]) -> list[str]:
    """The contents of every file named by `patterns`, in order."""
    return [read_text_file(path) for path in expand_paths(patterns)]
