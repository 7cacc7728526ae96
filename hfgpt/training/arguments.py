"""The arguments of a pretraining run, defined once.

`TrainArguments` is the single definition of every `hfgpt train` option: each field's metadata holds its
help text, its group in `--help`, its command-line flags and the check its value must pass. The command
line is generated from these fields (`hfgpt.cli.options`), and the dataclass validates itself on
construction, so a bad value is refused, naming the option, before any corpus is read.

`trainer_arguments()` turns run settings into transformers' `TrainingArguments` for pretraining and the
fine-tuning recipes alike: one device rule, one place where `label_names` is set.

This module imports neither torch nor transformers at import time: `hfgpt train --help` stays instant.
"""

from __future__ import annotations

import math
import typing
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from hfgpt.errors import ConfigError
from hfgpt.training.recipes import RECIPES

# transformers' names of the schedules `--lr-scheduler` offers
LR_SCHEDULERS = ("cosine", "linear", "constant", "cosine_with_min_lr")


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
    )
    return field(default=default, default_factory=default_factory, metadata=metadata)


def preset_override(what: str, check=positive):
    """A model option that replaces the size preset's `what` when given (`TrainArguments.model_overrides`)."""
    return option(
        None, group="model", check=check, help=f"override the preset's {what}", preset_override=True
    )


def flag_of(f) -> str:
    """The flag a user types for field `f`, for messages."""
    if f.metadata.get("positional"):
        return f.name
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
    return None


def validate_fields(instance) -> None:
    """Check every field of a dataclass built with `option()`: type, choices, then its check."""
    hints = typing.get_type_hints(type(instance))
    for f in fields(instance):
        value = getattr(instance, f.name)
        problem = _type_error(value, hints[f.name])
        if problem is None and value is not None:
            choices = f.metadata.get("choices")
            if choices and value not in choices:
                problem = f"must be one of {', '.join(choices)}"
            elif f.metadata.get("check") is not None:
                problem = f.metadata["check"](value)
        if problem:
            raise ConfigError(f"{flag_of(f)} {problem}, got {value!r}")


@dataclass
class TrainArguments:
    """Everything `hfgpt train` needs; each field is one command-line option (see `hfgpt train --help`)."""

    # a recipe: named values for the options below (see `hfgpt.training.recipes`)
    recipe: str | None = option(
        None,
        group="recipe",
        choices=tuple(RECIPES),
        help="fill in the options left at their defaults from a named recipe; options given with other "
        "values win. " + "; ".join(f"{name}: {recipe.summary}" for name, recipe in RECIPES.items()),
    )

    # data
    corpus: list[str] = option(
        default_factory=list,
        positional=True,
        group="data",
        help="text files, folders (their *.txt), glob patterns, JSON/JSONL/Parquet/CSV files with a text "
        "column, or a datasets save_to_disk directory (default: the bundled story 'The Verdict')",
    )
    text_column: str = option("text", group="data", check=not_empty, help="the column holding the text")
    tokenizer: str = option(
        "gpt2-bpe", group="data", check=not_empty, help="tokenizer strategy (see `hfgpt plugins`)"
    )
    vocab_size: int | None = option(
        None,
        group="data",
        check=positive,
        help="vocabulary size, for tokenizer strategies that learn one (bpe)",
    )
    max_length: int | None = option(
        None, group="data", check=positive, help="tokens per training window (default: the context length)"
    )
    stride: int | None = option(
        None, group="data", check=positive, help="distance between windows (default: max-length, no overlap)"
    )
    num_proc: int | None = option(
        None, group="data", check=positive, help="processes for tokenizing the corpus"
    )
    skip_bad_files: bool = option(
        False, group="data", help="skip corpus files that are not UTF-8 text (reported) instead of stopping"
    )
    val_fraction: float = option(
        0.1,
        group="data",
        check=fraction,
        help="share held out for validation: whole documents when there are several, else the tail of the text",
    )

    # model
    preset: str = option(
        "small-cpu",
        group="model",
        check=not_empty,
        help="size preset: tiny, small-cpu, gpt2, gpt2-medium, ...",
    )
    position_encoding: str = option(
        "learned", group="model", check=not_empty, help="positional strategy (see `hfgpt plugins`)"
    )
    context_length: int | None = preset_override("context length")
    emb_dim: int | None = preset_override("embedding width")
    n_heads: int | None = preset_override("attention heads")
    n_layers: int | None = preset_override("layer count")
    drop_rate: float | None = preset_override("dropout rate", check=probability)

    # training
    output_dir: str = option(
        "runs/verdict", group="training", check=not_empty, help="where the trained model is saved"
    )
    epochs: float = option(60.0, group="training", check=positive, help="passes over the training windows")
    max_steps: int | None = option(
        None,
        group="training",
        check=positive,
        help="stop after this many optimizer steps (default: --epochs)",
    )
    batch_size: int = option(2, group="training", check=positive, help="windows per step and device")
    learning_rate: float = option(
        2e-3,
        group="training",
        flags=("--learning-rate", "--lr"),
        check=positive,
        help="peak learning rate (AdamW)",
    )
    lr_scheduler: str = option(
        "cosine",
        group="training",
        choices=LR_SCHEDULERS,
        help="learning-rate schedule after the warm-up: cosine and linear decay to 0, cosine_with_min_lr to a "
        "tenth of the peak, constant keeps the peak",
    )
    warmup_steps: int = option(
        10,
        group="training",
        check=non_negative,
        help="steps of linear warm-up from 0 to the peak learning rate",
    )
    weight_decay: float = option(0.1, group="training", check=non_negative, help="AdamW weight decay")
    max_grad_norm: float = option(
        1.0, group="training", check=non_negative, help="clip the gradient to this norm; 0 does not clip"
    )
    seed: int = option(123, group="training", check=non_negative, help="random seed: same seed, same losses")
    eval_every: int | None = option(
        None,
        group="training",
        check=positive,
        help="log and validate every N steps (default: 20, or 1/50 of the run's steps when that is more)",
    )
    eval_batch_size: int = option(
        8, group="training", check=positive, help="windows per validation step and device"
    )
    max_eval_tokens: int = option(
        1_000_000,
        group="training",
        check=positive,
        help="validate on at most this many held-out tokens, the same windows at every validation (seeded)",
    )
    save_every: int | None = option(
        None, group="training", check=positive, help="checkpoint every N steps (default: 10 x eval-every)"
    )
    mixed_precision: str = option(
        "no", group="training", choices=("no", "fp16", "bf16"), help="autocast precision on a GPU"
    )
    cpu: bool = option(False, group="training", help="train on the CPU even when a GPU is present")
    compile: bool = option(
        False, group="training", help="torch.compile the model: faster steps on a GPU, after a compilation"
    )
    overwrite: bool = option(
        False, group="training", help="replace a model already in --output-dir, once the new run has finished"
    )
    resume: bool = option(
        False, group="training", help="continue an interrupted run from its last checkpoint"
    )
    show_progress: bool = option(
        True, group="training", negative_flag="--no-progress", help="no progress bars"
    )

    # the sample printed after training
    prompt: str = option(
        "Every effort moves you",
        group="sample",
        check=not_empty,
        help="prompt for the sample printed after training",
    )
    max_new_tokens: int = option(
        50, group="sample", check=positive, help="tokens the sample adds to the prompt"
    )

    def __post_init__(self) -> None:
        self.corpus = list(self.corpus)
        if self.recipe in RECIPES:  # an unknown name is refused by `validate_fields`, naming the choices
            RECIPES[self.recipe].apply(self)
        validate_fields(self)

    def model_overrides(self) -> dict[str, Any]:
        """The model fields given explicitly, replacing the preset's."""
        names = [f.name for f in fields(self) if f.metadata.get("preset_override")]
        return {name: getattr(self, name) for name in names if getattr(self, name) is not None}

    def tokenizer_options(self) -> dict[str, Any]:
        """The options for the tokenizer strategy given explicitly."""
        return {"vocab_size": self.vocab_size} if self.vocab_size is not None else {}


def trainer_arguments(
    output_dir: str,
    *,
    label_names: list[str],
    epochs: float,
    batch_size: int,
    learning_rate: float,
    seed: int,
    cpu: bool = False,
    show_progress: bool = False,
    **extra: Any,
):
    """transformers' `TrainingArguments` with hfgpt's defaults, for pretraining and fine-tuning alike.

    One device rule: accelerate places the work on the machine's accelerator (CUDA, MPS, XPU...) when there
    is one and `cpu` is false, else on the CPU (where `accelerate launch` runs its processes with gloo). On
    CUDA: TF32 matmuls where the GPU has them; transformers' defaults already use fused AdamW and pinned
    memory for data loading.
    `label_names` names the target columns: `["shift_labels"]` for windows, `["labels"]` for fine-tuning
    data. Trainer computes evaluation losses only for batches that carry every one of them.
    """
    import torch
    from transformers import TrainingArguments
    from transformers.utils import is_torch_tf32_available

    settings = dict(
        weight_decay=0.1,
        lr_scheduler_type="constant",
        save_strategy="no",
        report_to="none",
        data_seed=seed,
    )
    settings.update(extra)
    return TrainingArguments(
        output_dir=output_dir,
        label_names=label_names,
        num_train_epochs=epochs,
        per_device_train_batch_size=batch_size,
        per_device_eval_batch_size=settings.pop("per_device_eval_batch_size", batch_size),
        learning_rate=learning_rate,
        seed=seed,
        use_cpu=cpu or not torch.accelerator.is_available(),
        # TensorFloat-32 matmuls on GPUs that have them (Ampere on): float32 training at tensor-core speed
        tf32=True if not cpu and torch.cuda.is_available() and is_torch_tf32_available() else None,
        disable_tqdm=not show_progress,
        **settings,
    )


__all__ = ["TrainArguments", "option", "trainer_arguments", "validate_fields"]
