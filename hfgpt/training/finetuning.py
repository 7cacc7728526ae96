"""Fine-tuning a (pre)trained hfgpt model with transformers' Trainer.

Three recipes, each a function that loads, trains, evaluates and (optionally) saves:

* `continue_pretraining` - more next-token training of a saved `HFGPTForCausalLM` on another corpus.
* `finetune_classifier` - `HFGPTForSequenceClassification` on a CSV with `text` and `label` columns; the
  head reads the hidden state of the last real token, so batches are padded per batch.
* `finetune_instructions` - Alpaca-style instruction tuning, scored only on the response and EOS.

Each takes its training settings (`epochs`, `batch_size`, `learning_rate`, `seed`, `overwrite`) as keyword
arguments, defined once by `RecipeSettings`; each recipe has its own defaults (`CONTINUE_PRETRAINING`,
`CLASSIFIER`, `INSTRUCTIONS`).

They share pretraining's machinery: `trainer_arguments` (device rule, `label_names`), the output-directory
safety of `hfgpt.training.outputs` (a saved model is replaced only by a finished one) and transformers'
collators. The datasets they train on are built by `hfgpt.data.finetuning`.
"""

from __future__ import annotations

import copy
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from hfgpt.data.finetuning import (
    IGNORE_INDEX,
    build_classification_dataset,
    build_instruction_dataset,
    load_instructions,
    read_labelled_csv,
    split_indices,
)
from hfgpt.loading import load_causal_lm
from hfgpt.training.arguments import trainer_arguments
from hfgpt.training.outputs import check_output_dir, mark_complete, publish, recover, staging_dir


@dataclass(frozen=True)
class RecipeSettings:
    """How a recipe trains: the keyword arguments every recipe takes.

    Attributes:
        epochs: passes over the training data.
        batch_size: rows (windows, messages or entries) per step and device.
        learning_rate: AdamW's learning rate, constant over the run.
        seed: seeds the model's new weights, the data order and the held-out split.
        overwrite: replace a model already saved in `output_dir` (once the new one is finished).
    """

    epochs: float
    batch_size: int
    learning_rate: float
    seed: int = 123
    overwrite: bool = False

    def updated(self, recipe: str, changes: dict[str, Any]) -> RecipeSettings:
        """These settings with the keyword arguments a call of `recipe` gave (an unknown one: TypeError)."""
        unknown = sorted(set(changes) - {f.name for f in fields(self)})
        if unknown:
            raise TypeError(f"{recipe}() got unexpected keyword arguments: {', '.join(unknown)}")
        return replace(self, **changes)


CONTINUE_PRETRAINING = RecipeSettings(epochs=3.0, batch_size=4, learning_rate=5e-4)
CLASSIFIER = RecipeSettings(epochs=5.0, batch_size=8, learning_rate=1e-3)
INSTRUCTIONS = RecipeSettings(epochs=5.0, batch_size=4, learning_rate=5e-4)


@dataclass
class FinetuneResult:
    """What a recipe returns: the trained model and tokenizer, losses and metrics, where it was saved."""

    model: Any
    tokenizer: Any
    metrics: dict[str, float] = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    output_dir: Path | None = None


def accuracy(eval_prediction) -> dict[str, float]:
    """`compute_metrics` for Trainer: share of rows whose highest logit is the true label."""
    import numpy as np

    logits, labels = eval_prediction.predictions, eval_prediction.label_ids
    if isinstance(logits, tuple):
        logits = logits[0]
    return {"accuracy": float((np.asarray(logits).argmax(-1) == np.asarray(labels)).mean())}


@contextmanager
def _workspace(output_dir: str | Path | None, overwrite: bool) -> Iterator[Path]:
    """Where Trainer works: `<output_dir>.partial` (published by `_save`), or a temporary directory that
    is removed on exit when the result is kept in memory only."""
    if output_dir is None:
        with tempfile.TemporaryDirectory(prefix="hfgpt-finetune-") as scratch:
            yield Path(scratch)
        return
    output_dir = Path(output_dir)
    for message in recover(output_dir):  # a killed earlier run may have left its model half published
        print(message, file=sys.stderr)
    check_output_dir(output_dir, overwrite)
    staging = staging_dir(output_dir)
    if staging.exists():  # left by an interrupted run
        shutil.rmtree(staging)
    yield staging


def _save(trainer, tokenizer, staging: Path, output_dir: str | Path | None) -> Path | None:
    if output_dir is None:
        return None
    trainer.save_model(str(staging))
    tokenizer.save_pretrained(str(staging))
    mark_complete(staging)  # last: from here on the model is published even if this process is killed
    publish(staging, Path(output_dir))
    return Path(output_dir)


def _trainer(
    settings: RecipeSettings,
    workspace: Path,
    label: str,
    model,
    tokenizer,
    data: tuple[Any, Any],
    collator,
    *,
    eval_strategy: str = "no",
    compute_metrics=None,
):
    """transformers' `Trainer` of a recipe over `data = (train_set, eval_set)`, logging every 5 steps.

    `label` names the target column; `eval_strategy="epoch"` also evaluates after every epoch, and
    `compute_metrics` (Trainer's) adds metrics to the loss.
    """
    from transformers import Trainer

    args = trainer_arguments(
        str(workspace),
        label_names=[label],
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        learning_rate=settings.learning_rate,
        seed=settings.seed,
        logging_steps=5,
        eval_strategy=eval_strategy,
    )
    train_set, eval_set = data
    return Trainer(
        model=model,
        args=args,
        train_dataset=train_set,
        eval_dataset=eval_set,
        processing_class=tokenizer,
        data_collator=collator,
        compute_metrics=compute_metrics,
    )


def _with_pad_token(tokenizer):
    """Batches are padded: a tokenizer without a pad token pads with its EOS token (GPT-2's convention)."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


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
    max_length: int | None = None,
    **settings: Any,
) -> FinetuneResult:
    """Train a saved `HFGPTForCausalLM` further on `corpus` with its own tokenizer.

    Args:
        model_dir: a directory written by `hfgpt train` (or any `save_pretrained` of HFGPTForCausalLM + tokenizer).
        corpus: anything `hfgpt.data.window` takes: a text, a list of texts, a `pathlib.Path`, a dataset.
        output_dir: where to save the result (`None`: keep it in memory only).
        max_length: window length; default the model's context length.
        settings: `epochs`, `batch_size`, `learning_rate`, `seed`, `overwrite` (see `RecipeSettings`);
            defaults `CONTINUE_PRETRAINING`: 3 epochs, batches of 4, learning rate 5e-4, seed 123.

    Returns `FinetuneResult` with `metrics["loss_before"]` and `metrics["loss_after"]`: the mean loss of the
    model on all windows of `corpus` before and after the extra training.
    """
    from transformers import default_data_collator, set_seed

    from hfgpt.data.windows import window

    run = CONTINUE_PRETRAINING.updated("continue_pretraining", settings)
    with _workspace(output_dir, run.overwrite) as workspace:
        set_seed(run.seed)
        model, tokenizer = load_causal_lm(model_dir)
        max_length = max_length or model.config.context_length
        windows = window(corpus, tokenizer, max_length=max_length, stride=max_length)
        data = (windows, windows)
        trainer = _trainer(run, workspace, "shift_labels", model, tokenizer, data, default_data_collator)
        before = trainer.evaluate()["eval_loss"]
        trainer.train()
        after = trainer.evaluate()["eval_loss"]
        saved = _save(trainer, tokenizer, workspace, output_dir)
    return FinetuneResult(
        model, tokenizer, {"loss_before": before, "loss_after": after}, _losses(trainer), saved
    )


def finetune_classifier(
    model_dir_or_config: Any,
    csv_path: str | Path,
    output_dir: str | Path | None = None,
    *,
    tokenizer: Any = None,
    eval_fraction: float = 0.2,
    **settings: Any,
) -> FinetuneResult:
    """Fine-tune `HFGPTForSequenceClassification` on a CSV of `text,label` rows and report accuracy.

    Args:
        model_dir_or_config: a saved model directory (its transformer weights and tokenizer are reused; the
            classification head starts fresh) or an `HFGPTConfig` for a model trained from scratch.
        csv_path: CSV with a header; `text` and `label` columns, labels are any strings (sorted into ids).
        tokenizer: with a config only: a tokenizer object or a strategy name (default `"regex"`, built on the
            training texts). `config.vocab_size` is set to its size.
        eval_fraction: share of rows held out (shuffled with `seed`) to measure accuracy on.
        settings: `epochs`, `batch_size`, `learning_rate`, `seed`, `overwrite` (see `RecipeSettings`);
            defaults `CLASSIFIER`: 5 epochs, batches of 8, learning rate 1e-3, seed 123.

    Returns `FinetuneResult` whose metrics hold `eval_accuracy`, `train_accuracy` and `majority_rate` (the
    accuracy of always answering the most frequent label of the training split, the bar to beat).
    """
    from collections import Counter

    from transformers import AutoTokenizer, DataCollatorWithPadding, set_seed

    from hfgpt.configuration_hfgpt import HFGPTConfig
    from hfgpt.modeling_hfgpt import HFGPTForSequenceClassification
    from hfgpt.tokenization.strategies import build_tokenizer

    run = CLASSIFIER.updated("finetune_classifier", settings)
    with _workspace(output_dir, run.overwrite) as workspace:
        texts, names = read_labelled_csv(csv_path)
        label_names = sorted(set(names))
        label2id = {name: i for i, name in enumerate(label_names)}
        label_ids = [label2id[name] for name in names]
        train_idx, eval_idx = split_indices(len(texts), eval_fraction, run.seed)
        set_seed(run.seed)

        head = dict(num_labels=len(label_names), id2label=dict(enumerate(label_names)), label2id=label2id)
        if isinstance(model_dir_or_config, HFGPTConfig):
            if tokenizer is None or isinstance(tokenizer, str):
                tokenizer = build_tokenizer(tokenizer or "regex", [texts[i] for i in train_idx])
            tokenizer = _with_pad_token(tokenizer)
            config = copy.deepcopy(model_dir_or_config)
            config.update({**head, "vocab_size": len(tokenizer), "pad_token_id": tokenizer.pad_token_id})
            model = HFGPTForSequenceClassification(config)
        else:
            model_dir = Path(model_dir_or_config)
            if not (model_dir / "config.json").is_file():
                raise FileNotFoundError(
                    f"{model_dir} holds no saved model: pass a model directory or an HFGPTConfig"
                )
            tokenizer = _with_pad_token(AutoTokenizer.from_pretrained(str(model_dir)))
            model = HFGPTForSequenceClassification.from_pretrained(
                str(model_dir), pad_token_id=tokenizer.pad_token_id, **head
            )

        max_length = model.config.context_length
        pick = lambda idx: ([texts[i] for i in idx], [label_ids[i] for i in idx])  # noqa: E731
        train_set = build_classification_dataset(*pick(train_idx), tokenizer, max_length)
        eval_set = build_classification_dataset(*pick(eval_idx), tokenizer, max_length)
        collator, data = DataCollatorWithPadding(tokenizer), (train_set, eval_set)
        trainer = _trainer(
            run,
            workspace,
            "labels",
            model,
            tokenizer,
            data,
            collator,
            eval_strategy="epoch",
            compute_metrics=accuracy,
        )
        trainer.train()
        metrics = {
            "eval_accuracy": trainer.evaluate()["eval_accuracy"],
            "train_accuracy": trainer.evaluate(train_set, metric_key_prefix="train")["train_accuracy"],
            "majority_rate": Counter(train_set["labels"]).most_common(1)[0][1] / len(train_set),
            "eval_majority_rate": Counter(eval_set["labels"]).most_common(1)[0][1] / len(eval_set),
        }
        saved = _save(trainer, tokenizer, workspace, output_dir)
    return FinetuneResult(model, tokenizer, metrics, _losses(trainer), saved)


def finetune_instructions(
    model_dir: str | Path,
    json_path: str | Path,
    output_dir: str | Path | None = None,
    *,
    eval_fraction: float = 0.1,
    **settings: Any,
) -> FinetuneResult:
    """Instruction-tune a saved `HFGPTForCausalLM` on an Alpaca-style JSON file; loss on responses only.

    Args:
        model_dir: a saved causal LM with its tokenizer (e.g. from `hfgpt train`).
        json_path: a JSON list of `{"instruction", "input", "output"}` objects (see `load_instructions`).
        eval_fraction: share of entries held out (shuffled with `seed`); `metrics["eval_loss"]` is measured on
            them, and `metrics["held_out"]` lists their indices in the file so callers can try them.
        settings: `epochs`, `batch_size`, `learning_rate`, `seed`, `overwrite` (see `RecipeSettings`);
            defaults `INSTRUCTIONS`: 5 epochs, batches of 4, learning rate 5e-4, seed 123.

    Returns `FinetuneResult` with `eval_loss_before`, `eval_loss` and `train_loss` in `metrics`.
    """
    from transformers import DataCollatorForSeq2Seq, set_seed

    run = INSTRUCTIONS.updated("finetune_instructions", settings)
    with _workspace(output_dir, run.overwrite) as workspace:
        set_seed(run.seed)
        entries = load_instructions(json_path)
        model, tokenizer = load_causal_lm(model_dir)
        tokenizer = _with_pad_token(tokenizer)
        train_idx, eval_idx = split_indices(len(entries), eval_fraction, run.seed)
        max_length = model.config.context_length
        train_set = build_instruction_dataset([entries[i] for i in train_idx], tokenizer, max_length)
        eval_set = build_instruction_dataset([entries[i] for i in eval_idx], tokenizer, max_length)
        collator = DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=IGNORE_INDEX)
        data = (train_set, eval_set)
        trainer = _trainer(run, workspace, "labels", model, tokenizer, data, collator, eval_strategy="epoch")
        before = trainer.evaluate()["eval_loss"]
        output = trainer.train()
        metrics = {
            "eval_loss_before": before,
            "eval_loss": trainer.evaluate()["eval_loss"],
            "train_loss": output.training_loss,
            "held_out": eval_idx,
        }
        saved = _save(trainer, tokenizer, workspace, output_dir)
    return FinetuneResult(model, tokenizer, metrics, _losses(trainer), saved)


__all__ = [
    "CLASSIFIER",
    "CONTINUE_PRETRAINING",
    "FinetuneResult",
    "INSTRUCTIONS",
    "RecipeSettings",
    "accuracy",
    "continue_pretraining",
    "finetune_classifier",
    "finetune_instructions",
]
