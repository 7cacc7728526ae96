"""LoRA fine-tuning of hfgpt models through peft: low-rank adapters on a frozen model.

The fine-tuning recipes (`hfgpt.training.finetuning`) take `lora=`: a `peft.LoraConfig`, or `True` for
`lora_config()`'s defaults. The model's own weights are frozen; trainable rank-`r` updates wrap hfgpt's
attention and MLP projections (`qkv`, `out_proj`, `fc`, `proj`: `TARGET_MODULES`), and a classifier's new
`score` head trains in full (peft's `modules_to_save`). The run then saves the adapter, not a model:
`adapter_config.json` (whose `base_model_name_or_path` is the absolute path of the base model directory)
and `adapter_model.safetensors`, with the tokenizer. peft loads it back onto the base model:

    import hfgpt  # registers hfgpt with transformers' Auto classes, which peft uses
    from peft import AutoPeftModelForCausalLM
    model = AutoPeftModelForCausalLM.from_pretrained("runs/lora")

A classifier adapter also holds `classifier.json`, the settings that turn the base causal LM into the
classifier (labels, padding id); pass them to `AutoPeftModelForSequenceClassification.from_pretrained`, or
use `load_lora`, which reads them. `merge_lora` folds an adapter into the base weights and saves an ordinary
hfgpt model directory.

peft is an optional dependency (`pip install 'hfgpt[lora]'`); without it `lora=` is a `ConfigError`.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

from hfgpt.errors import ConfigError, ModelLoadError

TARGET_MODULES = ("qkv", "out_proj", "fc", "proj")
"""hfgpt's linear projections in every block: fused query/key/value, attention output, MLP in and out."""

CLASSIFIER_HEAD = "score"
CLASSIFIER_FILE = "classifier.json"
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
INSTALL_HINT = "pip install 'hfgpt[lora]'"


def require_peft():
    """The `peft` module, or a `ConfigError` naming the extra that installs it."""
    try:
        import peft
    except ImportError:
        raise ConfigError(
            f"LoRA fine-tuning needs the peft package, which is not installed: {INSTALL_HINT}"
        ) from None
    return peft


def lora_config(
    *,
    rank: int = 8,
    alpha: float = 16.0,
    dropout: float = 0.05,
    target_modules: list[str] | tuple[str, ...] | str = TARGET_MODULES,
    modules_to_save: list[str] | None = None,
):
    """A `peft.LoraConfig` for hfgpt models, checked.

    Args:
        rank: the rank `r` of each update `B @ A` (positive).
        alpha: scales the update by `alpha / rank` (positive).
        dropout: dropout on the adapters' input while training, in `[0, 1)`.
        target_modules: module names (matched as the last parts of a module's dotted name, as peft does) or
            one regular expression for the full names; default hfgpt's attention and MLP projections.
        modules_to_save: modules trained in full and saved with the adapter (a classifier's `score` head is
            added by `finetune_classifier`).
    """
    peft = require_peft()
    _check_numbers(rank, alpha, dropout)
    return peft.LoraConfig(
        r=rank,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=target_modules if isinstance(target_modules, str) else list(target_modules),
        modules_to_save=list(modules_to_save) if modules_to_save else None,
    )


def _check_numbers(rank: Any, alpha: Any, dropout: Any) -> None:
    if isinstance(rank, bool) or not isinstance(rank, int) or rank <= 0:
        raise ConfigError(f"the LoRA rank must be a positive integer, got {rank!r}: pick e.g. 8")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha > 0:
        raise ConfigError(
            f"the LoRA alpha must be a positive number, got {alpha!r}: pick e.g. twice the rank"
        )
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise ConfigError(f"the LoRA dropout must be in [0, 1), got {dropout!r}")


def resolve(lora: Any, task: str):
    """The `LoraConfig` a recipe trains with, or None for full fine-tuning; checked before any work.

    `lora` is None/False (no LoRA), True (`lora_config()`) or a `peft.LoraConfig`, which is copied and
    completed: hfgpt's `TARGET_MODULES` where it names none, `task` (`"CAUSAL_LM"` or `"SEQ_CLS"`) as its task
    type, and for a classifier the `score` head in `modules_to_save`.
    """
    if lora is None or lora is False:
        return None
    peft = require_peft()
    if lora is True:
        config = lora_config()
    elif isinstance(lora, peft.LoraConfig):
        config = copy.deepcopy(lora)
    else:
        raise ConfigError(
            f"lora= takes a peft.LoraConfig or True (hfgpt's defaults), got {type(lora).__name__}: build one "
            "with hfgpt.training.lora.lora_config(rank=..., alpha=...)"
        )
    _check_numbers(config.r, config.lora_alpha, config.lora_dropout)
    if config.task_type is not None and str(getattr(config.task_type, "value", config.task_type)) != task:
        raise ConfigError(
            f"the LoraConfig's task_type is {config.task_type} but this recipe trains a {task} model: leave "
            "task_type unset"
        )
    config.task_type = peft.TaskType(task)
    if not config.target_modules and not getattr(config, "target_parameters", None):
        config.target_modules = set(TARGET_MODULES)
    if task == "SEQ_CLS" and CLASSIFIER_HEAD not in (config.modules_to_save or []):
        config.modules_to_save = [*(config.modules_to_save or []), CLASSIFIER_HEAD]
    return config


def _matches(pattern: str | list[str], name: str) -> bool:
    """Whether a module's dotted `name` is one `pattern` names, by peft's rule for `target_modules`: a regular
    expression for the whole name, or a list of names that the dotted name ends with."""
    if isinstance(pattern, str):
        return re.fullmatch(pattern, name) is not None
    return any(name == key or name.endswith("." + key) for key in pattern)


def check_modules(model, config) -> None:
    """A `ConfigError` unless every name in the config's `target_modules` matches a linear (or embedding)
    layer of `model` and every `modules_to_save` entry a module of it: peft would skip a name that matches
    nothing as long as another one matches, and raise its own error deep inside otherwise."""
    import torch.nn as nn

    modules = dict(model.named_modules())
    layers = [name for name, module in modules.items() if isinstance(module, (nn.Linear, nn.Embedding))]
    targets = config.target_modules
    if targets is not None:
        patterns = {targets: targets} if isinstance(targets, str) else {key: [key] for key in sorted(targets)}
        unmatched = [
            key for key, pattern in patterns.items() if not any(_matches(pattern, n) for n in layers)
        ]
        if unmatched:
            offered = sorted({name.rsplit(".", 1)[-1] for name in layers})
            raise ConfigError(
                f"LoRA target module(s) {', '.join(unmatched)} match no linear layer of this "
                f"{type(model).__name__}: target some of {', '.join(offered)} (hfgpt's default: "
                f"{', '.join(TARGET_MODULES)})"
            )
    unmatched = [
        key for key in config.modules_to_save or [] if not any(_matches([key], n) for n in modules if n)
    ]
    if unmatched:
        raise ConfigError(
            f"LoRA modules_to_save {', '.join(unmatched)} are not modules of this {type(model).__name__}: "
            "name modules of the model (a classifier's head is `score`)"
        )


def wrap(model, config, base_dir: str | Path):
    """`model` frozen under trainable adapters (a `peft.PeftModel`), after `check_modules`.

    The adapter records the absolute path of `base_dir`, so peft finds the base model from any working
    directory.
    """
    peft = require_peft()
    check_modules(model, config)
    model.name_or_path = model.config.name_or_path = str(Path(base_dir).resolve())  # what peft records
    return peft.get_peft_model(model, config)


def parameter_counts(model) -> dict[str, int]:
    """`{"trainable_parameters", "parameters"}`: the parameters training updates, and all of them."""
    seen, trainable, total = set(), 0, 0
    for parameter in model.parameters():
        if id(parameter) in seen:  # a tied weight counts once
            continue
        seen.add(id(parameter))
        total += parameter.numel()
        trainable += parameter.numel() if parameter.requires_grad else 0
    return {"trainable_parameters": trainable, "parameters": total}


def classifier_settings(config) -> dict[str, Any]:
    """What `from_pretrained` needs, beside the base causal LM's directory, to build this classifier."""
    return {
        "num_labels": config.num_labels,
        "id2label": {str(k): v for k, v in config.id2label.items()},
        "label2id": dict(config.label2id),
        "pad_token_id": config.pad_token_id,
    }


def read_classifier_settings(adapter_dir: str | Path) -> dict[str, Any]:
    """`classifier_settings` as a classifier run saved them beside its adapter (`classifier.json`)."""
    path = Path(adapter_dir) / CLASSIFIER_FILE
    if not path.is_file():
        raise ModelLoadError(
            f"{path} is missing: a classifier's adapter needs it (labels, padding id); copy it back from the run"
        )
    settings = json.loads(path.read_text(encoding="utf-8"))
    settings["id2label"] = {int(k): v for k, v in settings["id2label"].items()}  # JSON keys are strings
    return settings


def is_adapter_dir(directory: str | Path) -> bool:
    return (Path(directory) / ADAPTER_FILES[0]).is_file()


def load_lora(adapter_dir: str | Path, **kwargs):
    """The `peft.PeftModel` saved in `adapter_dir`, on its base model, in evaluation mode.

    peft's `AutoPeftModelForCausalLM` or `AutoPeftModelForSequenceClassification` by the adapter's task type;
    a classifier gets its labels and padding id from `classifier.json`. `kwargs` go to peft's
    `from_pretrained`.
    """
    peft = require_peft()
    import hfgpt.registration  # noqa: F401 - peft loads the base model through transformers' Auto classes

    adapter_dir = Path(adapter_dir)
    if not is_adapter_dir(adapter_dir):
        raise FileNotFoundError(
            f"{adapter_dir} holds no LoRA adapter (no adapter_config.json): pass the output directory of a "
            "fine-tuning run with lora="
        )
    config = peft.PeftConfig.from_pretrained(str(adapter_dir))
    base = config.base_model_name_or_path
    if not base or not Path(base).is_dir():
        raise ModelLoadError(
            f"the base model of the adapter in {adapter_dir} is not at {base!r} (adapter_config.json, "
            "base_model_name_or_path): put the base model directory back or edit that path"
        )
    task = str(getattr(config.task_type, "value", config.task_type))
    if task == "SEQ_CLS":
        loader = peft.AutoPeftModelForSequenceClassification
        kwargs = {**read_classifier_settings(adapter_dir), **kwargs}
    elif task == "CAUSAL_LM":
        loader = peft.AutoPeftModelForCausalLM
    else:
        raise ModelLoadError(f"the adapter in {adapter_dir} is for {task!r}, not a task hfgpt trains")
    return loader.from_pretrained(str(adapter_dir), **kwargs).eval()


def merge_lora(adapter_dir: str | Path, output_dir: str | Path, *, overwrite: bool = False) -> Path:
    """Fold the adapter in `adapter_dir` into its base model and save the result as an hfgpt model directory.

    The merged model (`merge_and_unload()`) computes what the adapter model does, without peft: it loads with
    `AutoModelForCausalLM` (or `AutoModelForSequenceClassification`) like any hfgpt model. The tokenizer is
    copied from the adapter directory. `output_dir` is written as a training run writes its model (see
    `RunDirectory`): a model already there is replaced only with `overwrite`, and only once the new one is
    saved.

    Returns `output_dir`.
    """
    from transformers import AutoTokenizer

    from hfgpt.training.outputs import RunDirectory, mark_complete

    adapter_dir = Path(adapter_dir)
    run = RunDirectory(output_dir, overwrite=overwrite).open()
    model = load_lora(adapter_dir).merge_and_unload()
    tokenizer = AutoTokenizer.from_pretrained(str(adapter_dir))
    model.save_pretrained(str(run.staging))
    tokenizer.save_pretrained(str(run.staging))
    mark_complete(run.staging)
    return run.publish()


__all__ = [
    "TARGET_MODULES",
    "check_modules",
    "classifier_settings",
    "is_adapter_dir",
    "load_lora",
    "lora_config",
    "merge_lora",
    "parameter_counts",
    "read_classifier_settings",
    "require_peft",
    "resolve",
    "wrap",
]
