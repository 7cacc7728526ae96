"""Fine-tuning datasets: Alpaca-style instruction data and labelled CSVs for classification.

* Instruction tuning: the model sees prompt + response + EOS but is scored only on the response and EOS;
  the prompt gets label -100, which transformers' losses ignore. Rows are unpadded: pad per batch with
  `transformers.DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100)`.
* Classification: `input_ids` and an integer `labels` per row; pad per batch with
  `transformers.DataCollatorWithPadding(tokenizer)`.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hfgpt.errors import DataError, TokenizerError

IGNORE_INDEX = -100  # label value transformers' losses skip

ALPACA_PREAMBLE = "Below is an instruction that describes a task. Write a response that appropriately completes the request."


# --- instruction data -------------------------------------------------------------------------------------
def format_alpaca(entry: Mapping[str, Any]) -> str:
    """The Alpaca prompt for one `{"instruction", "input" (optional), "output"}` entry, up to `### Response:\\n`.

    The `### Input:` section appears only when the entry has a non-empty `input`. The response itself is not
    included: append `entry["output"]` to train, or let the model continue the prompt to answer.
    """
    instruction = entry.get("instruction")
    if not isinstance(instruction, str) or not instruction.strip():
        raise DataError(f"an instruction entry needs a non-empty 'instruction' string, got {dict(entry)!r}")
    prompt = f"{ALPACA_PREAMBLE}\n\n### Instruction:\n{instruction}"
    if entry.get("input"):
        prompt += f"\n\n### Input:\n{entry['input']}"
    return prompt + "\n\n### Response:\n"


def load_instructions(path: str | Path) -> list[dict[str, str]]:
    """Read a JSON list of `{"instruction", "input", "output"}` objects (the Alpaca file layout)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no instruction file at {path}: pass a JSON file holding a list of entries")
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path} is not valid JSON ({exc}); it must hold a list of objects") from None
    if not isinstance(entries, list) or not entries:
        raise DataError(f"{path} must hold a non-empty JSON list of instruction objects")
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("output"), str):
            raise DataError(f"{path}: entry {i} needs 'instruction' and 'output' strings, got {entry!r}")
        format_alpaca(entry)  # validates the instruction
    return entries


def encode_instruction(entry: Mapping[str, Any], tokenizer, max_length: int | None = None) -> dict:
    """Token ids of prompt + response + EOS with labels -100 on the prompt, truncated to `max_length`.

    Prompt and response are tokenized separately so the prompt's tokens are exactly those the model gets at
    inference time (`tokenizer(format_alpaca(entry))`), and the boundary between them is exact.
    """
    if tokenizer.eos_token_id is None:
        raise TokenizerError(
            "the tokenizer has no EOS token; instruction tuning needs one to teach the model to stop"
        )
    prompt = tokenizer(format_alpaca(entry), add_special_tokens=False)["input_ids"]
    response = tokenizer(entry["output"], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    input_ids = (prompt + response)[:max_length]
    labels = ([IGNORE_INDEX] * len(prompt) + response)[:max_length]
    return {"input_ids": input_ids, "labels": labels}


def build_instruction_dataset(entries: Sequence[Mapping[str, Any]], tokenizer, max_length: int | None = None):
    """A `datasets.Dataset` of unpadded `input_ids`/`labels` (see `encode_instruction`).

    Entries whose prompt alone fills `max_length` (no response token left to learn) are an error, naming them.
    """
    from datasets import Dataset

    rows = [encode_instruction(entry, tokenizer, max_length) for entry in entries]
    empty = [i for i, row in enumerate(rows) if all(label == IGNORE_INDEX for label in row["labels"])]
    if empty:
        raise DataError(
            f"entries {empty[:10]} have prompts of {max_length} tokens or more, leaving no response to learn: "
            "shorten them or use a model with a longer context_length"
        )
    return Dataset.from_list(rows)


# --- classification data ----------------------------------------------------------------------------------
def read_labelled_csv(path: str | Path, text_column: str = "text", label_column: str = "label"):
    """Rows of a CSV with a header naming `text_column` and `label_column`: `(texts, label names)`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"no CSV file at {path}: pass a file with '{text_column}' and '{label_column}' columns"
        )
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {text_column, label_column} - set(reader.fieldnames or [])
        if missing:
            raise DataError(
                f"{path} has no column(s) {sorted(missing)} (header: {reader.fieldnames}); the first line must "
                f"name the columns, e.g. '{text_column},{label_column}'"
            )
        rows = [(row[text_column], row[label_column]) for row in reader if row[text_column]]
    if len({label for _, label in rows}) < 2:
        raise DataError(f"{path} needs at least two different labels to train a classifier")
    return [text for text, _ in rows], [label for _, label in rows]


def build_classification_dataset(texts: Sequence[str], label_ids: Sequence[int], tokenizer, max_length: int):
    """A `datasets.Dataset` of `input_ids` (truncated to `max_length`) and integer `labels`; pad per batch."""
    from datasets import Dataset

    ids = tokenizer(list(texts), add_special_tokens=False, truncation=True, max_length=max_length)[
        "input_ids"
    ]
    if any(len(row) == 0 for row in ids):
        raise DataError("some texts encode to no tokens at all; remove empty lines from the CSV")
    return Dataset.from_dict({"input_ids": ids, "labels": [int(label) for label in label_ids]})


__all__ = [
    "ALPACA_PREAMBLE",
    "IGNORE_INDEX",
    "build_classification_dataset",
    "build_instruction_dataset",
    "encode_instruction",
    "format_alpaca",
    "load_instructions",
    "read_labelled_csv",
]
