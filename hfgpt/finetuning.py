"""Fine-tuning a (pre)trained hfgpt model with transformers' Trainer.

Three recipes, each a function that loads, trains, evaluates and (optionally) saves:

* `continue_pretraining` - more next-token training of a saved `HFGPTForCausalLM` on another corpus.
* `finetune_classifier` - `HFGPTForSequenceClassification` on a CSV with `text` and `label` columns; the
  head reads the hidden state of the last real token, so batches are padded per batch with the pad id.
* `finetune_instructions` - Alpaca-style instruction tuning: the model sees prompt + response + EOS but is
  scored only on the response and EOS (the prompt and the padding get label -100, which the loss ignores).

The building blocks (`format_alpaca`, `build_instruction_dataset`, `PaddingCollator`,
`build_classification_dataset`, `accuracy`) are public so the recipes can be mixed into other loops.
"""

from __future__ import annotations

import atexit
import copy
import csv
import json
import random
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
        raise ValueError(f"an instruction entry needs a non-empty 'instruction' string, got {dict(entry)!r}")
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
        raise ValueError(f"{path} is not valid JSON ({exc}); it must hold a list of objects") from None
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"{path} must hold a non-empty JSON list of instruction objects")
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("output"), str):
            raise ValueError(f"{path}: entry {i} needs 'instruction' and 'output' strings, got {entry!r}")
        format_alpaca(entry)  # validates the instruction
    return entries


def encode_instruction(entry: Mapping[str, Any], tokenizer, max_length: int | None = None) -> dict:
    """Token ids of prompt + response + EOS with labels -100 on the prompt, truncated to `max_length`.

    Prompt and response are tokenized separately so the prompt's tokens are exactly those the model gets at
    inference time (`tokenizer(format_alpaca(entry))`), and the boundary between them is exact.
    """
    if tokenizer.eos_token_id is None:
        raise ValueError(
            "the tokenizer has no EOS token; instruction tuning needs one to teach the model to stop"
        )
    prompt = tokenizer(format_alpaca(entry), add_special_tokens=False)["input_ids"]
    response = tokenizer(entry["output"], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    input_ids = (prompt + response)[:max_length]
    labels = ([IGNORE_INDEX] * len(prompt) + response)[:max_length]
    return {"input_ids": input_ids, "labels": labels}


def build_instruction_dataset(entries: Sequence[Mapping[str, Any]], tokenizer, max_length: int | None = None):
    """A `datasets.Dataset` of unpadded `input_ids`/`labels` (see `encode_instruction`); pad with `PaddingCollator`.

    Entries whose prompt alone fills `max_length` (no response token left to learn) are an error, naming them.
    """
    from datasets import Dataset

    rows = [encode_instruction(entry, tokenizer, max_length) for entry in entries]
    empty = [i for i, row in enumerate(rows) if all(label == IGNORE_INDEX for label in row["labels"])]
    if empty:
        raise ValueError(
            f"entries {empty[:10]} have prompts of {max_length} tokens or more, leaving no response to learn: "
            "shorten them or use a model with a longer context_length"
        )
    return Dataset.from_list(rows)


@dataclass
class PaddingCollator:
    """Pads `input_ids` (with `pad_token_id`) and `labels` (with -100) to the longest row of each batch.

    Adds the matching `attention_mask` (1 = real token). Scalar `labels` (classification) are stacked as they
    are. Padding goes on the right, as causal models and `HFGPTForSequenceClassification` expect.

    Args:
        pad_token_id (`int`): id written into padded `input_ids` positions.
        label_pad_id (`int`, defaults to -100): value written into padded `labels` positions.
    """

    pad_token_id: int
    label_pad_id: int = IGNORE_INDEX

    def __call__(self, features: list[Mapping[str, Any]]) -> dict:
        import torch

        longest = max(len(f["input_ids"]) for f in features)
        batch: dict[str, list] = {"input_ids": [], "attention_mask": []}
        for f in features:
            ids = list(f["input_ids"])
            pad = longest - len(ids)
            batch["input_ids"].append(ids + [self.pad_token_id] * pad)
            batch["attention_mask"].append([1] * len(ids) + [0] * pad)
            if "labels" in f:
                labels = f["labels"]
                if isinstance(labels, (list, tuple)):
                    labels = list(labels) + [self.label_pad_id] * (longest - len(labels))
                batch.setdefault("labels", []).append(labels)
        return {name: torch.tensor(values, dtype=torch.long) for name, values in batch.items()}


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
            raise ValueError(
                f"{path} has no column(s) {sorted(missing)} (header: {reader.fieldnames}); the first line must "
                f"name the columns, e.g. '{text_column},{label_column}'"
            )
        rows = [(row[text_column], row[label_column]) for row in reader if row[text_column]]
    if len({label for _, label in rows}) < 2:
        raise ValueError(f"{path} needs at least two different labels to train a classifier")
    return [text for text, _ in rows], [label for _, label in rows]


def build_classification_dataset(texts: Sequence[str], label_ids: Sequence[int], tokenizer, max_length: int):
    """A `datasets.Dataset` of `input_ids` (truncated to `max_length`) and integer `labels`; pad per batch."""
    from datasets import Dataset

    ids = tokenizer(list(texts), add_special_tokens=False, truncation=True, max_length=max_length)[
        "input_ids"
    ]
    if any(len(row) == 0 for row in ids):
        raise ValueError("some texts encode to no tokens at all; remove empty lines from the CSV")
    return Dataset.from_dict({"input_ids": ids, "labels": [int(label) for label in label_ids]})


def accuracy(eval_prediction) -> dict[str, float]:
    """`compute_metrics` for Trainer: share of rows whose highest logit is the true label."""
    import numpy as np

    logits, labels = eval_prediction.predictions, eval_prediction.label_ids
    if isinstance(logits, tuple):
        logits = logits[0]
    return {"accuracy": float((np.asarray(logits).argmax(-1) == np.asarray(labels)).mean())}


def split_indices(n: int, eval_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Shuffle `range(n)` with `seed` and cut off `eval_fraction` of it (at least one row) for evaluation."""
    if not 0 < eval_fraction < 1:
        raise ValueError(f"eval_fraction must be between 0 and 1, got {eval_fraction}")
    order = list(range(n))
    random.Random(seed).shuffle(order)
    n_eval = max(1, round(n * eval_fraction))
    return order[n_eval:], order[:n_eval]


# --- the recipes ------------------------------------------------------------------------------------------
@dataclass
class FinetuneResult:
    """What a recipe returns: the trained model and tokenizer, losses and metrics, where it was saved."""

    model: Any
    tokenizer: Any
    metrics: dict[str, float] = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    output_dir: Path | None = None


def _training_arguments(epochs: float, batch_size: int, learning_rate: float, seed: int, **extra):
    import torch
    from transformers import TrainingArguments

    # Nothing is checkpointed (save_strategy="no"); Trainer still wants a folder, so it gets a temporary one.
    scratch = tempfile.mkdtemp(prefix="hfgpt-finetune-")
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    return TrainingArguments(
        output_dir=scratch,
        num_train_epochs=epochs,
        per_device_train_batch_size=batch_size,
        per_device_eval_batch_size=batch_size,
        learning_rate=learning_rate,
        weight_decay=0.1,
        lr_scheduler_type="constant",
        save_strategy="no",
        logging_steps=extra.pop("logging_steps", 5),
        seed=seed,
        data_seed=seed,
        use_cpu=not torch.cuda.is_available(),
        report_to="none",
        disable_tqdm=True,
        # HFGPTForCausalLM also accepts `shift_labels`; Trainer would otherwise count it as a label column and
        # skip the eval loss for batches that carry `labels` only.
        label_names=["labels"],
        **extra,
    )


def _check_output_dir(output_dir: str | Path | None, overwrite: bool) -> None:
    from hfgpt.training import holds_model

    if output_dir is not None and holds_model(Path(output_dir)) and not overwrite:
        raise FileExistsError(
            f"{output_dir} already holds a model; pass overwrite=True (--overwrite) or choose another output dir"
        )


def _save(trainer, tokenizer, output_dir: str | Path | None) -> Path | None:
    if output_dir is None:
        return None
    trainer.save_model(str(output_dir))
    tokenizer.save_pretrained(str(output_dir))
    return Path(output_dir)


def _load_causal_lm(model_dir: str | Path):
    from transformers import AutoTokenizer

    from hfgpt.modeling_hfgpt import HFGPTForCausalLM

    if not (Path(model_dir) / "config.json").is_file():
        raise FileNotFoundError(
            f"{model_dir} holds no saved model (config.json missing): train one first, e.g. `hfgpt train "
            f"--output-dir {model_dir}`"
        )
    return HFGPTForCausalLM.from_pretrained(str(model_dir)), AutoTokenizer.from_pretrained(str(model_dir))


def _losses(trainer) -> list[dict]:
    return [
        {k: v for k, v in rec.items() if k in ("step", "loss", "eval_loss", "eval_accuracy")}
        for rec in trainer.state.log_history
        if "loss" in rec or "eval_loss" in rec
    ]


def continue_pretraining(
    model_dir: str | Path,
    corpus: Any,
    output_dir: str | Path | None = None,
    *,
    epochs: float = 3.0,
    batch_size: int = 4,
    learning_rate: float = 5e-4,
    max_length: int | None = None,
    seed: int = 123,
    overwrite: bool = False,
) -> FinetuneResult:
    """Train a saved `HFGPTForCausalLM` further on `corpus` with its own tokenizer.

    Args:
        model_dir: a directory written by `hfgpt train` (or any `save_pretrained` of HFGPTForCausalLM + tokenizer).
        corpus: anything `hfgpt.data.window` takes: text, a list of texts, file paths or globs.
        output_dir: where to save the result (`None`: keep it in memory only).
        max_length: window length; default the model's context length.

    Returns `FinetuneResult` with `metrics["loss_before"]` and `metrics["loss_after"]`: the mean loss of the
    model on all windows of `corpus` before and after the extra training.
    """
    from transformers import Trainer, default_data_collator, set_seed

    from hfgpt.data import window

    _check_output_dir(output_dir, overwrite)
    set_seed(seed)
    model, tokenizer = _load_causal_lm(model_dir)
    max_length = max_length or model.config.context_length
    windows = window(corpus, tokenizer, max_length=max_length, stride=max_length)
    args = _training_arguments(epochs, batch_size, learning_rate, seed)
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=windows,
        eval_dataset=windows,
        processing_class=tokenizer,
        data_collator=default_data_collator,
    )
    before = trainer.evaluate()["eval_loss"]
    trainer.train()
    after = trainer.evaluate()["eval_loss"]
    return FinetuneResult(
        model=model,
        tokenizer=tokenizer,
        metrics={"loss_before": before, "loss_after": after},
        history=_losses(trainer),
        output_dir=_save(trainer, tokenizer, output_dir),
    )


def finetune_classifier(
    model_dir_or_config: Any,
    csv_path: str | Path,
    output_dir: str | Path | None = None,
    *,
    tokenizer: Any = None,
    epochs: float = 5.0,
    batch_size: int = 8,
    learning_rate: float = 1e-3,
    eval_fraction: float = 0.2,
    seed: int = 123,
    overwrite: bool = False,
) -> FinetuneResult:
    """Fine-tune `HFGPTForSequenceClassification` on a CSV of `text,label` rows and report accuracy.

    Args:
        model_dir_or_config: a saved model directory (its transformer weights and tokenizer are reused; the
            classification head starts fresh) or an `HFGPTConfig` for a model trained from scratch.
        csv_path: CSV with a header; `text` and `label` columns, labels are any strings (sorted into ids).
        tokenizer: with a config only: a tokenizer object or a strategy name (default `"regex"`, built on the
            training texts). `config.vocab_size` is set to its size.
        eval_fraction: share of rows held out (shuffled with `seed`) to measure accuracy on.

    Returns `FinetuneResult` whose metrics hold `eval_accuracy`, `train_accuracy` and `majority_rate` (the
    accuracy of always answering the most frequent label of the training split, the bar to beat).
    """
    from collections import Counter

    from transformers import AutoTokenizer, Trainer, set_seed

    from hfgpt.configuration_hfgpt import HFGPTConfig
    from hfgpt.modeling_hfgpt import HFGPTForSequenceClassification
    from hfgpt.plugins import get_tokenizer_strategy

    _check_output_dir(output_dir, overwrite)
    texts, names = read_labelled_csv(csv_path)
    label_names = sorted(set(names))
    label2id = {name: i for i, name in enumerate(label_names)}
    label_ids = [label2id[name] for name in names]
    train_idx, eval_idx = split_indices(len(texts), eval_fraction, seed)
    set_seed(seed)

    head = dict(num_labels=len(label_names), id2label=dict(enumerate(label_names)), label2id=label2id)
    if isinstance(model_dir_or_config, HFGPTConfig):
        if tokenizer is None or isinstance(tokenizer, str):
            tokenizer = get_tokenizer_strategy(tokenizer or "regex")([texts[i] for i in train_idx])
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        config = copy.deepcopy(model_dir_or_config)
        config.update({**head, "vocab_size": len(tokenizer), "pad_token_id": pad_id})
        model = HFGPTForSequenceClassification(config)
    else:
        model_dir = Path(model_dir_or_config)
        if not (model_dir / "config.json").is_file():
            raise FileNotFoundError(
                f"{model_dir} holds no saved model: pass a model directory or an HFGPTConfig"
            )
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        model = HFGPTForSequenceClassification.from_pretrained(str(model_dir), pad_token_id=pad_id, **head)

    max_length = model.config.context_length
    train_set = build_classification_dataset(
        [texts[i] for i in train_idx], [label_ids[i] for i in train_idx], tokenizer, max_length
    )
    eval_set = build_classification_dataset(
        [texts[i] for i in eval_idx], [label_ids[i] for i in eval_idx], tokenizer, max_length
    )
    trainer = Trainer(
        model=model,
        args=_training_arguments(epochs, batch_size, learning_rate, seed, eval_strategy="epoch"),
        train_dataset=train_set,
        eval_dataset=eval_set,
        processing_class=tokenizer,
        data_collator=PaddingCollator(pad_id),
        compute_metrics=accuracy,
    )
    trainer.train()
    metrics = {
        "eval_accuracy": trainer.evaluate()["eval_accuracy"],
        "train_accuracy": trainer.evaluate(train_set, metric_key_prefix="train")["train_accuracy"],
        "majority_rate": Counter(train_set["labels"]).most_common(1)[0][1] / len(train_set),
        "eval_majority_rate": Counter(eval_set["labels"]).most_common(1)[0][1] / len(eval_set),
    }
    return FinetuneResult(model, tokenizer, metrics, _losses(trainer), _save(trainer, tokenizer, output_dir))


def finetune_instructions(
    model_dir: str | Path,
    json_path: str | Path,
    output_dir: str | Path | None = None,
    *,
    epochs: float = 5.0,
    batch_size: int = 4,
    learning_rate: float = 5e-4,
    eval_fraction: float = 0.1,
    seed: int = 123,
    overwrite: bool = False,
) -> FinetuneResult:
    """Instruction-tune a saved `HFGPTForCausalLM` on an Alpaca-style JSON file; loss on responses only.

    Args:
        model_dir: a saved causal LM with its tokenizer (e.g. from `hfgpt train`).
        json_path: a JSON list of `{"instruction", "input", "output"}` objects (see `load_instructions`).
        eval_fraction: share of entries held out (shuffled with `seed`); `metrics["eval_loss"]` is measured on
            them, and `metrics["held_out"]` lists their indices in the file so callers can try them.

    Returns `FinetuneResult` with `eval_loss_before`, `eval_loss` and `train_loss` in `metrics`.
    """
    from transformers import Trainer, set_seed

    _check_output_dir(output_dir, overwrite)
    set_seed(seed)
    entries = load_instructions(json_path)
    model, tokenizer = _load_causal_lm(model_dir)
    train_idx, eval_idx = split_indices(len(entries), eval_fraction, seed)
    max_length = model.config.context_length
    train_set = build_instruction_dataset([entries[i] for i in train_idx], tokenizer, max_length)
    eval_set = build_instruction_dataset([entries[i] for i in eval_idx], tokenizer, max_length)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    trainer = Trainer(
        model=model,
        args=_training_arguments(epochs, batch_size, learning_rate, seed, eval_strategy="epoch"),
        train_dataset=train_set,
        eval_dataset=eval_set,
        processing_class=tokenizer,
        data_collator=PaddingCollator(pad_id),
    )
    before = trainer.evaluate()["eval_loss"]
    output = trainer.train()
    metrics = {
        "eval_loss_before": before,
        "eval_loss": trainer.evaluate()["eval_loss"],
        "train_loss": output.training_loss,
        "held_out": eval_idx,
    }
    return FinetuneResult(model, tokenizer, metrics, _losses(trainer), _save(trainer, tokenizer, output_dir))


__all__ = [
    "ALPACA_PREAMBLE",
    "IGNORE_INDEX",
    "FinetuneResult",
    "PaddingCollator",
    "accuracy",
    "build_classification_dataset",
    "build_instruction_dataset",
    "continue_pretraining",
    "encode_instruction",
    "finetune_classifier",
    "finetune_instructions",
    "format_alpaca",
    "load_instructions",
    "read_labelled_csv",
    "split_indices",
]
