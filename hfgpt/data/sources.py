"""Corpus sources: files, folders, globs, saved datasets and in-memory texts -> a `datasets` object.

This is the one place where paths become text. Everything downstream (tokenization, windowing, training)
receives a `datasets.Dataset` (or `IterableDataset`) with a text column and never looks at a string to
guess whether it is a path: a string given to `window()` is always text, a `pathlib.Path` is always a path,
and `load_corpus()` takes paths only.

Text files become one document each (the rows of datasets' "text" builder with `sample_by="document"`),
written to the Arrow cache on disk and memory-mapped, so a corpus larger than RAM costs disk, not memory.
JSON/JSONL, Parquet and CSV files are read with their datasets builders and must have the text column.
"""

from __future__ import annotations

import codecs
import glob
import os
from collections.abc import Callable, Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from hfgpt.errors import DataError

# file suffix -> datasets builder; anything else is read as plain text
BUILDERS = {".json": "json", ".jsonl": "json", ".parquet": "parquet", ".csv": "csv"}
SAVED_DATASET_MARKERS = ("dataset_info.json", "dataset_dict.json", "state.json")
WRITER_BATCH = 16  # rows per write: a row may be a whole book, and datasets buffers writer_batch_size rows


def default_corpus_path() -> Path:
    """The bundled default corpus, Edith Wharton's "The Verdict" (public domain, 20,479 characters)."""
    path = Path(str(resources.files("hfgpt") / "resources" / "the-verdict.txt"))
    if not path.is_file():
        raise FileNotFoundError(f"the bundled corpus {path} is missing: reinstall hfgpt")
    return path


# --- files ------------------------------------------------------------------------------------------------
def expand_paths(patterns: Iterable[str | os.PathLike]) -> list[Path]:
    """Files named by paths, globs or folders (folders are searched recursively for *.txt); a path that names
    nothing, a glob that matches nothing or a folder without *.txt files is a `FileNotFoundError`."""
    files: list[Path] = []
    for pattern in patterns:
        pattern = str(pattern)
        if os.path.isdir(pattern):
            found = sorted(Path(pattern).rglob("*.txt"))
        elif glob.has_magic(pattern) and not os.path.exists(pattern):
            found = sorted(Path(p) for p in glob.glob(pattern, recursive=True) if os.path.isfile(p))
        else:
            if not os.path.exists(pattern):
                raise FileNotFoundError(f"corpus file {pattern[:200]} does not exist: check the path")
            found = [Path(pattern)]
        if not found:
            what = "no *.txt file in the folder" if os.path.isdir(pattern) else "no files match"
            raise FileNotFoundError(f"{what} {pattern[:200]!r}: check the path or the glob pattern")
        files.extend(found)
    return files


def check_text_file(path: str | os.PathLike, chunk: int = 1 << 20) -> None:
    """Raise a clear error unless the file exists, is readable, holds no NUL byte in its first 8 KiB and is
    UTF-8 text throughout (read in chunks: any size, little memory)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"corpus file {path} does not exist")
    decoder, offset, start = codecs.getincrementaldecoder("utf-8")(), 0, 0
    try:
        with open(path, "rb") as f:
            while True:
                data = f.read(chunk)
                if offset == 0 and b"\x00" in data[:8192]:
                    raise _data_error(
                        f"corpus file {path} looks binary (it contains NUL bytes)",
                        "pass plain UTF-8 text files",
                    )
                start = offset - len(decoder.getstate()[0])  # where the bytes this call decodes begin
                decoder.decode(data, final=not data)
                if not data:
                    break
                offset += len(data)
    except UnicodeDecodeError as exc:
        raise _data_error(
            f"corpus file {path} is not UTF-8 text (bad byte at offset {start + exc.start})",
            f"convert it (from Latin-1: `iconv -f latin1 -t utf-8 {path} > {path}.utf8`)",
        ) from None
    except OSError as exc:
        raise _data_error(
            f"cannot read corpus file {path} ({exc.strerror})", "check its permissions"
        ) from None


def read_text_file(path: str | os.PathLike) -> str:
    """A UTF-8 text file's contents, exactly (no newline translation); a missing, unreadable, binary or
    non-UTF-8 file is a clear error."""
    check_text_file(path)
    return Path(path).read_bytes().decode("utf-8")


# --- datasets ---------------------------------------------------------------------------------------------
def is_saved_dataset(path: str | os.PathLike) -> bool:
    """Whether `path` is a directory written by `Dataset.save_to_disk` / `DatasetDict.save_to_disk`."""
    return os.path.isdir(path) and any((Path(path) / m).exists() for m in SAVED_DATASET_MARKERS)


def check_text_column(dataset, text_column: str, where: str = "the dataset"):
    """Return `dataset` if it has `text_column`, else a clear error listing its columns."""
    columns = dataset.column_names or []
    if text_column not in columns:
        raise DataError(
            f"{where} has no {text_column!r} column (columns: {', '.join(columns) or 'none'}): name the column "
            "that holds the text (--text-column; text_column= from Python)"
        )
    return dataset


def _first_split(dataset):
    from datasets import DatasetDict

    if isinstance(dataset, DatasetDict):
        return dataset["train"] if "train" in dataset else next(iter(dataset.values()))
    return dataset


def load_corpus(
    paths: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    *,
    text_column: str = "text",
    cache_dir: str | None = None,
    skip_bad_files: bool = False,
    report: Callable[[str], None] | None = None,
):
    """Load a corpus from disk as a `datasets.Dataset` with a `text_column`, one row per document.

    Args:
        paths: text files (one document each), folders (their `*.txt`, recursively), glob patterns,
            JSON/JSONL/Parquet/CSV files with a text column, or one `save_to_disk` directory (its `train`
            split, or its first one). `None` or empty: the bundled "The Verdict".
        text_column (`str`, defaults to `"text"`): the column holding the text in structured files and
            saved datasets; plain text files get this column name.
        cache_dir (`str`, *optional*): where `datasets` writes its Arrow cache.
        skip_bad_files (`bool`, defaults to `False`): leave out text files that are not UTF-8 text (binary,
            another encoding), structured files that cannot be parsed or lack the column, and rows of
            structured corpora without text (null, empty, whitespace only, a number, an object...) instead of
            raising; `report` is told how many files and rows were left out.
        report (*optional*): called with one line of text, for `skip_bad_files`.

    Every row of a structured corpus (JSON/JSONL/Parquet/CSV, a saved dataset) must hold text in
    `text_column`: the first row that does not is refused naming the file, the row and what it holds, before any
    tokenizing starts.
    """
    from datasets import concatenate_datasets, load_from_disk

    items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths or [])
    if not all(isinstance(p, (str, os.PathLike)) for p in items):
        bad = next(p for p in items if not isinstance(p, (str, os.PathLike)))
        raise DataError(f"corpus paths must be strings or paths, got {type(bad).__name__} ({bad!r:.60})")
    if not items:
        items = [default_corpus_path()]
    if len(items) == 1 and is_saved_dataset(items[0]):
        dataset = _first_split(load_from_disk(str(items[0])))
        where = f"the dataset in {items[0]}"
        dataset, bad = _text_rows(
            check_text_column(dataset, text_column, where), text_column, where, skip_bad_files
        )
        if len(dataset) == 0:
            raise DataError(
                f"no text left to read: every row was skipped (first: {bad[1]}); pass a corpus with text"
            )
        _report_rows(report, [bad] if bad else [], text_column)
        return dataset

    by_builder: dict[str, list[str]] = {}
    skipped: list[tuple[Path, DataError]] = []
    for path in expand_paths(items):
        builder = BUILDERS.get(path.suffix.lower(), "text")
        if builder == "text":
            try:
                check_text_file(path)
            except DataError as exc:
                if not skip_bad_files:
                    raise _data_error(
                        _reason(exc), f"{exc.fix}, or leave it out (--skip-bad-files)"
                    ) from None
                skipped.append((path, exc))
                continue
        by_builder.setdefault(builder, []).append(str(path))
    parts, bad_rows = [], []
    for builder, files in by_builder.items():
        if builder == "text":
            part = _load_text_files(files, cache_dir)
            if text_column != "text":
                part = part.rename_column("text", text_column)
            parts.append(part)
            continue
        for file in files:  # one at a time, so that a problem names its file
            try:
                part, bad = _load_structured(builder, file, text_column, cache_dir, skip_bad_files)
            except DataError as exc:
                if not skip_bad_files:
                    raise
                skipped.append((Path(file), exc))
                continue
            if len(part):
                parts.append(part)
            if bad:
                bad_rows.append(bad)
    if not parts:
        first = _reason(skipped[0][1]) if skipped else bad_rows[0][1]
        raise DataError(
            f"no text left to read: every corpus file{' and row' if bad_rows else ''} was skipped "
            f"(first: {first}); pass UTF-8 text or files with text"
        )
    if skipped and report is not None:
        size = sum(path.stat().st_size for path, _ in skipped)
        report(
            f"hfgpt: skipped {len(skipped)} file(s), {size:,} bytes, that are not UTF-8 text or cannot be read "
            f"(first: {_reason(skipped[0][1])})"
        )
    _report_rows(report, bad_rows, text_column)
    if len(parts) == 1:
        return parts[0]
    return concatenate_datasets([part.select_columns([text_column]) for part in parts])


def _reason(exc: BaseException) -> str:
    """What is wrong, without the fix (the message a skipped file would have raised, for the report)."""
    return getattr(exc, "reason", None) or str(exc)


def _report_rows(report, bad_rows: list[tuple[int, str]], text_column: str) -> None:
    if bad_rows and report is not None:
        report(
            f"hfgpt: skipped {sum(n for n, _ in bad_rows):,} row(s) without text in the {text_column!r} column "
            f"(first: {bad_rows[0][1]})"
        )


def _data_error(message: str, fix: str) -> DataError:
    """`DataError("<message>: <fix>")` that keeps both parts: a skipped file is reported by its `reason`."""
    error = DataError(f"{message}: {fix}")
    error.reason, error.fix = message, fix
    return error


def _json_problem(file: str) -> str | None:
    """Where a JSON or JSON Lines file stops being JSON ("line 3: Expecting ',' delimiter"), or None.

    Read only once the JSON builder has failed: line by line as JSON Lines; a file whose first line is not JSON
    on its own may be one document spread over lines, and is parsed whole."""
    import json

    try:
        with open(file, encoding="utf-8") as f:
            first = True
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    json.loads(line)
                except json.JSONDecodeError as exc:
                    if not first:
                        return _json_error(exc, number)
                    break
                first = False
            else:
                return None  # JSON Lines throughout: the problem is not the syntax
        with open(file, encoding="utf-8") as f:
            json.load(f)
    except UnicodeDecodeError as exc:
        return f"not UTF-8 text: {exc.reason}"
    except json.JSONDecodeError as exc:
        return _json_error(exc, exc.lineno)
    except OSError:
        pass
    return None


def _json_error(exc, line: int) -> str:
    return f"line {line}, column {exc.colno}: {exc.msg.removesuffix(' at')}"


def _load_structured(builder: str, file: str, text_column: str, cache_dir: str | None, skip_rows: bool):
    """`(dataset, rows skipped)` of one JSON/JSONL/Parquet/CSV file whose `text_column` must hold text.

    A file the builder cannot parse is refused naming the file (and the line, for JSON); rows without text are
    refused or skipped as `_text_rows` says.
    """
    import logging

    from datasets import load_dataset

    builder_log = logging.getLogger("datasets.packaged_modules")
    level = builder_log.level
    builder_log.setLevel(logging.CRITICAL)  # its own report of the failure below: the message says it once
    try:
        part = load_dataset(
            builder, data_files=[file], split="train", cache_dir=cache_dir, writer_batch_size=WRITER_BATCH
        )
    except Exception as exc:  # noqa: BLE001 - datasets wraps parser errors of every kind in its own
        cause = exc.__cause__ or exc
        where = _json_problem(file) if builder == "json" else None
        message = where or " ".join(str(cause).split())[:200] or type(cause).__name__
        raise _data_error(
            f"{file} cannot be read as {builder.upper()} ({message})",
            "fix the file, or leave it out (--skip-bad-files)",
        ) from None
    finally:
        builder_log.setLevel(level)
    check_text_column(part, text_column, file)
    return _text_rows(part, text_column, file, skip_rows)


def _describe_value(value: Any) -> str:
    """What a row holds instead of text, for messages: "null", "a number (42)", "an object ({'a': ...)"."""
    if value is None:
        return "null"
    if isinstance(value, str):
        return "an empty string" if not value else "only whitespace"
    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
    if isinstance(value, bool):
        return f"a boolean ({shown})"
    if isinstance(value, (int, float)):
        return f"a number ({shown})"
    if isinstance(value, dict):
        return f"an object ({shown})"
    if isinstance(value, (list, tuple)):
        return f"a list ({shown})"
    return f"{type(value).__name__} ({shown})"


def _text_rows(dataset, text_column: str, where: str, skip_rows: bool):
    """`(dataset, skipped)`: `dataset` if every row of `text_column` holds text (a string with more than
    whitespace); otherwise the first row that does not is refused, naming `where`, the row (from 1) and what it
    holds, or with `skip_rows` such rows are left out and the column becomes strings. `skipped` is None, or
    `(rows skipped, "<where> row <n> holds <what>")` for the first.

    JSON whose column mixes strings with other values arrives as datasets' `Json` column (each value as JSON
    text); a column of another type (numbers, objects, all null) holds no text in any row.
    """
    import json

    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    column = dataset.data.column(text_column)
    kind = column.type
    strings = pa.types.is_string(kind) or pa.types.is_large_string(kind)
    is_json = isinstance(kind, pa.BaseExtensionType) and kind.extension_name == "arrow.json"

    def without_text(chunk) -> np.ndarray:  # a chunk at a time: the column may be larger than memory
        if strings:
            blank = pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(chunk)), 0)
            return np.asarray(pc.fill_null(blank, True).to_numpy(zero_copy_only=False), dtype=bool)
        if is_json:
            values = [None if v is None else json.loads(v) for v in chunk.storage.to_pylist()]
            return np.array([not (isinstance(v, str) and v.strip()) for v in values], dtype=bool)
        return np.ones(len(chunk), dtype=bool)  # numbers, objects, lists, all null: no row holds text

    bad = np.concatenate([without_text(chunk) for chunk in column.chunks] or [np.zeros(0, dtype=bool)])
    n_bad = int(bad.sum())
    if not n_bad:
        return dataset, None
    row = int(np.argmax(bad))
    value = column[row].as_py()
    what = _describe_value(json.loads(value) if is_json and value is not None else value)
    if not skip_rows:
        fix = "give every row text"
        if not (strings or is_json or pa.types.is_null(kind)):
            fix = f"its values are {kind}: convert them to strings or name the text column with --text-column"
        raise _data_error(
            f"{where} row {row + 1}: the {text_column!r} column holds {what}, not text",
            f"{fix}, or skip such rows (--skip-bad-files)",
        )
    # in memory: the indices of a saved dataset would otherwise be cached in the user's dataset directory
    dataset = dataset.select(np.flatnonzero(~bad), keep_in_memory=True)
    if not strings:  # decoded values, as strings (a cast would keep JSON's quotes)
        from datasets import Value

        features = dataset.features.copy()
        features[text_column] = Value("string")
        dataset = dataset.map(
            lambda batch: {text_column: batch[text_column]},
            batched=True,
            features=features,
            keep_in_memory=True,
        )
    return dataset, (n_bad, f"{where} row {row + 1} holds {what}")


def _read_documents(files: list[tuple[str, int, int]]):
    for path, _size, _mtime in files:
        # text mode, as datasets' "text" builder reads: universal newlines ("\r\n", "\r") become "\n"
        with open(path, encoding="utf-8") as f:
            yield {"text": f.read()}


def _load_text_files(files: list[str], cache_dir: str | None):
    """Text files, one document (row) each, in datasets' Arrow cache.

    The rows datasets' "text" builder makes with `sample_by="document"`, written by `Dataset.from_generator`:
    the builder resolves every file as a pattern and probes it for an archive format, 0.9 s of its 1.0 s on
    the standard library's 1,786 files, all in one process before any `num_proc` work can start. Each file's
    size and modification time are part of the cache key, so an edited file is read again.
    """
    from datasets import Dataset, Features, Value

    stamped = []
    for path in files:
        stat = os.stat(path)
        stamped.append((path, stat.st_size, stat.st_mtime_ns))
    return Dataset.from_generator(
        _read_documents,
        features=Features({"text": Value("string")}),
        gen_kwargs={"files": stamped},
        cache_dir=cache_dir,
        writer_batch_size=WRITER_BATCH,
        split="train",
    )


def as_dataset(source: Any, text_column: str = "text"):
    """What `window()` accepts, as a `datasets` object with a `text_column` (or `input_ids`).

    A `str` is one text and a list of `str` is several: strings are never read as paths. A `pathlib.Path`
    (or a list of them) goes through `load_corpus`. `Dataset`, `IterableDataset` and `DatasetDict` pass through.
    """
    from datasets import Dataset, DatasetDict, IterableDataset

    if isinstance(source, (Dataset, IterableDataset, DatasetDict)):
        return source
    if isinstance(source, os.PathLike):
        return load_corpus(source, text_column=text_column)
    items = [source] if isinstance(source, str) else source
    if isinstance(items, (list, tuple)) and items:
        if all(isinstance(s, str) for s in items):
            return Dataset.from_dict({text_column: list(items)})
        if all(isinstance(s, os.PathLike) for s in items):
            return load_corpus(items, text_column=text_column)
    raise DataError(
        f"cannot window {type(source).__name__} {source!r:.80}: pass a text, a list of texts, a pathlib.Path "
        "(or a list of them) for files, or a datasets Dataset/IterableDataset/DatasetDict with a text or "
        "input_ids column"
    )


def iter_texts(dataset, text_column: str = "text", batch_size: int = 1000) -> Iterable[str]:
    """The texts of a dataset, batch by batch: only one batch is in memory at a time."""
    for batch in dataset.select_columns([text_column]).iter(batch_size=batch_size):
        yield from batch[text_column]


def drop_blank(dataset, text_column: str = "text"):
    """The documents that hold more than whitespace."""
    return dataset.filter(
        lambda batch: [bool(text.strip()) for text in batch[text_column]],
        batched=True,
        batch_size=16,
        desc="Reading",
    )


__all__ = [
    "as_dataset",
    "check_text_column",
    "check_text_file",
    "default_corpus_path",
    "expand_paths",
    "is_saved_dataset",
    "iter_texts",
    "load_corpus",
    "read_text_file",
    "drop_blank",
]
