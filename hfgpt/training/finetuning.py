"""Fine-tuning a (pre)trained hfgpt model with transformers' Trainer.

Three recipes, each a function that loads, trains, evaluates and (optionally) saves:

* `continue_pretraining` - more next-token training of a saved `HFGPTForCausalLM` on another corpus, validated
  on documents held out of it.
* `finetune_classifier` - `HFGPTForSequenceClassification` on a CSV with `text` and `label` columns; the
  head reads the hidden state of the last real token, so batches are padded per batch.
* `finetune_instructions` - Alpaca-style instruction tuning, scored only on the response and EOS.

Each takes its training settings as explicit keyword-only arguments, with its own defaults, and `lora=` (a
`peft.LoraConfig`, or True for hfgpt's defaults) to train low-rank adapters on the frozen model instead of
every weight; the run then saves the adapter (see `hfgpt.training.lora`). They share
pretraining's machinery: `trainer_arguments` (device rule, `label_names`), the run lifecycle of
`hfgpt.training.outputs.RunDirectory` (a saved model is replaced only by a finished one), the held-out split of
`hfgpt.data.split`, and transformers' collators. The datasets they train on are built by
`hfgpt.data.finetuning`.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hfgpt.data.finetuning import (
    IGNORE_INDEX,
    build_classification_dataset,
    build_instruction_dataset,
    load_instructions,
    read_labelled_csv,
)
from hfgpt.errors import ConfigError, OutputDirError
from hfgpt.loading import load_causal_lm
from hfgpt.training import lora as adapters
from hfgpt.training.arguments import trainer_arguments
from hfgpt.training.outputs import RunDirectory, run_history


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


def _held_out(n_rows: int, share: float, seed: int) -> tuple[list[int], list[int]]:
    """`(train, held-out)` row indices of examples (CSV rows, instructions): the shared split, by rows."""
    from hfgpt.data.split import choose

    split = choose(np.ones(n_rows, dtype=np.int64), share, seed, min_size=1, unit="rows", cut=False)
    return split.train.tolist(), split.held_out.tolist()


def _finish(run: RunDirectory, trainer, tokenizer, metrics: dict) -> Path | None:
    """Save the trained model with its log into the run directory and publish it."""
    history = run_history(trainer.state.log_history)
    run.save(trainer, tokenizer, {"metrics": metrics, "history": history})
    return run.publish()


def _trainer(
    settings: dict[str, Any],
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
        str(workspace / "checkpoints"),
        label_names=[label],
        epochs=settings["epochs"],
        batch_size=settings["batch_size"],
        learning_rate=settings["learning_rate"],
        seed=settings["seed"],
        logging_steps=5,
        eval_strategy=eval_strategy,
        prediction_loss_only=compute_metrics is None,
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


def _adapted(model, adapter, model_dir: str | Path):
    """`model` under trainable LoRA adapters (`hfgpt.training.lora.wrap`) when `adapter` is a LoraConfig."""
    return model if adapter is None else adapters.wrap(model, adapter, model_dir)


def _with_pad_token(tokenizer):
    """Batches are padded: a tokenizer without a pad token pads with its EOS token (GPT-2's convention)."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


@contextmanager
def _run(output_dir: str | Path | None, overwrite: bool) -> Iterator[RunDirectory]:
    """The recipe's run directory, opened (see `RunDirectory`); a temporary one is removed on exit.

    A directory holding a LoRA adapter holds a trained model too: it is replaced only with `overwrite`.
    """
    run = RunDirectory(output_dir, overwrite=overwrite).open()
    try:
        if output_dir is not None and not overwrite and adapters.is_adapter_dir(output_dir):
            raise OutputDirError(
                f"{output_dir} already holds a trained LoRA adapter; pass overwrite=True to replace it (it is "
                "replaced only once the new run has finished) or choose another output directory"
            )
        yield run
    finally:
        run.close()


def continue_pretraining(
    model_dir: str | Path,
    corpus: Any,
    output_dir: str | Path | None = None,
    *,
    max_length: int | None = None,
    val_fraction: float = 0.1,
    epochs: float = 3.0,
    batch_size: int = 4,
    learning_rate: float = 5e-4,
    seed: int = 123,
    overwrite: bool = False,
    lora: Any = None,
) -> FinetuneResult:
    """Train a saved `HFGPTForCausalLM` further on `corpus` with its own tokenizer.

    Args:
        model_dir: a directory written by `hfgpt train` (or any `save_pretrained` of HFGPTForCausalLM + tokenizer).
        corpus: a text, a list of texts, a `pathlib.Path` (or a list of them) or a `datasets.Dataset` of texts.
        output_dir: where to save the result (`None`: keep it in memory only).
        max_length: window length; default the model's context length.
        val_fraction: share of the corpus's tokens held out for validation (`hfgpt.data.split`).
        epochs, batch_size, learning_rate: AdamW's run (constant learning rate); batch_size windows per step.
        seed: seeds the data order and the held-out split.
        overwrite: replace a model already saved in `output_dir` (once the new one is finished).
        lora: a `peft.LoraConfig`, or True for `hfgpt.training.lora.lora_config()`: train adapters on the
            frozen model (default targets: every block's `qkv`, `out_proj`, `fc`, `proj`) and save only them;
            `result.model` is then the `peft.PeftModel`.

    Returns `FinetuneResult` with `metrics["loss_before"]` and `metrics["loss_after"]`: the mean loss of the
    model on the held-out windows before and after the extra training, and `metrics["held_out"]`.
    """
    from transformers import default_data_collator, set_seed

    from hfgpt.data import split
    from hfgpt.data.sources import as_dataset
    from hfgpt.data.stream import tokenize
    from hfgpt.data.windows import window

    settings = dict(epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, seed=seed)
    adapter = adapters.resolve(lora, "CAUSAL_LM")
    with _run(output_dir, overwrite) as run:
        set_seed(seed)
        model, tokenizer = load_causal_lm(model_dir)
        model = _adapted(model, adapter, model_dir)
        max_length = max_length or model.config.context_length
        tokens = tokenize(as_dataset(corpus), tokenizer)
        chosen = split.choose(
            split.row_sizes(tokens, "input_ids", "tokens"), val_fraction, seed, max_length + 1
        )
        train_tokens, held_tokens = split.apply(chosen, tokens, "input_ids")
        data = tuple(
            window(part, tokenizer, max_length=max_length, stride=max_length)
            for part in (train_tokens, held_tokens)
        )
        trainer = _trainer(
            settings, run.staging, "shift_labels", model, tokenizer, data, default_data_collator
        )
        before = trainer.evaluate()["eval_loss"]
        trainer.train()
        metrics = {
            "loss_before": before,
            "loss_after": trainer.evaluate()["eval_loss"],
            "held_out": chosen.describe(),
            **adapters.parameter_counts(model),
        }
        saved = _finish(run, trainer, tokenizer, metrics)
    return FinetuneResult(model, tokenizer, metrics, run_history(trainer.state.log_history), saved)


def finetune_classifier(
    model_dir_or_config: Any,
    csv_path: str | Path,
    output_dir: str | Path | None = None,
    *,
    tokenizer: Any = None,
    eval_fraction: float = 0.2,
    epochs: float = 5.0,
    batch_size: int = 8,
    learning_rate: float = 1e-3,
    seed: int = 123,
    overwrite: bool = False,
    lora: Any = None,
) -> FinetuneResult:
    """Fine-tune `HFGPTForSequenceClassification` on a CSV of `text,label` rows and report accuracy.

    Args:
        model_dir_or_config: a saved model directory (its transformer weights and tokenizer are reused; the
            classification head starts fresh) or an `HFGPTConfig` for a model trained from scratch.
        csv_path: CSV with a header; `text` and `label` columns, labels are any strings (sorted into ids).
        tokenizer: with a config only: a tokenizer object or a strategy name (default `"regex"`, built on the
            training texts). `config.vocab_size` is set to its size.
        eval_fraction: share of rows held out (`hfgpt.data.split`, seeded) to measure accuracy on.
        epochs, batch_size, learning_rate: AdamW's run (constant learning rate); batch_size rows per step.
        seed: seeds the head's initialisation, the data order and the held-out split.
        overwrite: replace a model already saved in `output_dir` (once the new one is finished).
        lora: a `peft.LoraConfig`, or True for `hfgpt.training.lora.lora_config()`: train adapters on the
            frozen model (default targets: every block's `qkv`, `out_proj`, `fc`, `proj`) and save only them;
            the new `score` head trains in full (`modules_to_save`), and the run also saves
            `classifier.json` (labels, padding id) for `hfgpt.training.lora.load_lora`. Needs a model
            directory: adapters on a model trained from scratch would adapt random weights.

    Returns `FinetuneResult` whose metrics hold `eval_accuracy`, `train_accuracy` and `majority_rate` (the
    accuracy of always answering the most frequent label of the training split, the bar to beat).
    """
    from collections import Counter

    from transformers import AutoTokenizer, DataCollatorWithPadding, set_seed

    from hfgpt.configuration_hfgpt import HFGPTConfig
    from hfgpt.modeling_hfgpt import HFGPTForSequenceClassification
    from hfgpt.tokenization.strategies import build_tokenizer

    settings = dict(epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, seed=seed)
    adapter = adapters.resolve(lora, "SEQ_CLS")
    if adapter is not None and isinstance(model_dir_or_config, HFGPTConfig):
        raise ConfigError(
            "lora= adapts a trained model, and an HFGPTConfig starts from random weights: pass a saved model "
            "directory, or fine-tune fully (lora=None)"
        )
    with _run(output_dir, overwrite) as run:
        texts, names = read_labelled_csv(csv_path)
        label_names = sorted(set(names))
        label2id = {name: i for i, name in enumerate(label_names)}
        label_ids = [label2id[name] for name in names]
        train_idx, eval_idx = _held_out(len(texts), eval_fraction, seed)
        set_seed(seed)

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
            model = _adapted(model, adapter, model_dir)

        max_length = model.config.context_length
        pick = lambda idx: ([texts[i] for i in idx], [label_ids[i] for i in idx])  # noqa: E731
        train_set = build_classification_dataset(*pick(train_idx), tokenizer, max_length)
        eval_set = build_classification_dataset(*pick(eval_idx), tokenizer, max_length)
        collator, data = DataCollatorWithPadding(tokenizer), (train_set, eval_set)
        trainer = _trainer(
            settings,
            run.staging,
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
            **adapters.parameter_counts(model),
        }
        if adapter is not None:
            rebuild = adapters.classifier_settings(model.config)
            (run.staging / adapters.CLASSIFIER_FILE).write_text(json.dumps(rebuild, indent=1))
        saved = _finish(run, trainer, tokenizer, metrics)
    return FinetuneResult(model, tokenizer, metrics, run_history(trainer.state.log_history), saved)


def finetune_instructions(
    model_dir: str | Path,
    json_path: str | Path,
    output_dir: str | Path | None = None,
    *,
    eval_fraction: float = 0.1,
    epochs: float = 5.0,
    batch_size: int = 4,
    learning_rate: float = 5e-4,
    seed: int = 123,
    overwrite: bool = False,
    lora: Any = None,
) -> FinetuneResult:
    """Instruction-tune a saved `HFGPTForCausalLM` on an Alpaca-style JSON file; loss on responses only.

    Args:
        model_dir: a saved causal LM with its tokenizer (e.g. from `hfgpt train`).
        json_path: a JSON list of `{"instruction", "input", "output"}` objects (see `load_instructions`).
        eval_fraction: share of entries held out (`hfgpt.data.split`, seeded); `metrics["eval_loss"]` is
            measured on them, and `metrics["held_out"]` lists their indices in the file so callers can try them.
        epochs, batch_size, learning_rate: AdamW's run (constant learning rate); batch_size entries per step.
        seed: seeds the data order and the held-out split.
        overwrite: replace a model already saved in `output_dir` (once the new one is finished).
        lora: a `peft.LoraConfig`, or True for `hfgpt.training.lora.lora_config()`: train adapters on the
            frozen model (default targets: every block's `qkv`, `out_proj`, `fc`, `proj`) and save only them;
            `result.model` is then the `peft.PeftModel`.

    Returns `FinetuneResult` with `eval_loss_before`, `eval_loss` and `train_loss` in `metrics`.
    """
    from transformers import DataCollatorForSeq2Seq, set_seed

    settings = dict(epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, seed=seed)
    adapter = adapters.resolve(lora, "CAUSAL_LM")
    with _run(output_dir, overwrite) as run:
        set_seed(seed)
        entries = load_instructions(json_path)
        model, tokenizer = load_causal_lm(model_dir)
        model = _adapted(model, adapter, model_dir)
        tokenizer = _with_pad_token(tokenizer)
        train_idx, eval_idx = _held_out(len(entries), eval_fraction, seed)
        max_length = model.config.context_length
        train_set = build_instruction_dataset([entries[i] for i in train_idx], tokenizer, max_length)
        eval_set = build_instruction_dataset([entries[i] for i in eval_idx], tokenizer, max_length)
        collator = DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=IGNORE_INDEX)
        data = (train_set, eval_set)
        trainer = _trainer(
            settings, run.staging, "labels", model, tokenizer, data, collator, eval_strategy="epoch"
        )
        before = trainer.evaluate()["eval_loss"]
        output = trainer.train()
        metrics = {
            "eval_loss_before": before,
            "eval_loss": trainer.evaluate()["eval_loss"],
            "train_loss": output.training_loss,
            "held_out": eval_idx,
            **adapters.parameter_counts(model),
        }
        saved = _finish(run, trainer, tokenizer, metrics)
    return FinetuneResult(model, tokenizer, metrics, run_history(trainer.state.log_history), saved)


__all__ = [
    "FinetuneResult",
    "accuracy",
    "continue_pretraining",
    "finetune_classifier",
    "finetune_instructions",
]
