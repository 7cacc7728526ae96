"""The arguments of a pretraining run, defined once.

`TrainArguments` is the single definition of every `hfgpt train` option: each field's metadata holds its
help text, its group in `--help`, its command-line flags and the check its value must pass. The command
line is generated from these fields (`hfgpt.cli.options`), and the dataclass validates itself on
construction, so a bad value is refused, naming the option, before any corpus is read.

`trainer_arguments()` turns run settings into transformers' `TrainingArguments` for pretraining and the
fine-tuning recipes alike: one device rule, one place where `label_names` is set.

`--config FILE` reads the same options from a YAML or JSON file (`read_config_file`); like a recipe it fills
in the options left at their defaults, so an option given on the command line wins over the file, and the
file wins over a recipe it names or one given on the command line.

This module imports neither torch nor transformers at import time: `hfgpt train --help` stays instant.
"""

from __future__ import annotations

import json
import math
import types
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from hfgpt.errors import ConfigError
from hfgpt.options import (
    field_problem,
    fill_defaults,
    flag_of,
    fraction,
    non_negative,
    not_empty,
    option,
    positive,
    probability,
    validate_fields,
)
from hfgpt.training.recipes import RECIPES

# transformers' names of the schedules `--lr-scheduler` offers
LR_SCHEDULERS = ("cosine", "linear", "constant", "cosine_with_min_lr")
MIXED_PRECISION = ("auto", "no", "bf16", "fp16")
REPORT_TO = ("none", "tensorboard", "wandb")
# the package each `--report-to` needs, and the extra that installs it
REPORT_TO_PACKAGES = {"tensorboard": ("tensorboard", "hfgpt[tensorboard]"), "wandb": ("wandb", "wandb")}


def preset_override(what: str, check=positive):
    """A model option that replaces the size preset's `what` when given (`TrainArguments.model_overrides`)."""
    return option(
        None, group="model", check=check, help=f"override the preset's {what}", preset_override=True
    )


@dataclass
class TrainArguments:
    """Everything `hfgpt train` needs; each field is one command-line option (see `hfgpt train --help`)."""

    # a file of option values, then a recipe: named values for the options below
    config: str | None = option(
        None,
        group="recipe",
        flags=("--config",),
        run_only=True,
        help="read options from a YAML or JSON file of option names and values (e.g. 'learning_rate: 6e-4' "
        "or '\"batch-size\": 8'); options given on the command line win over the file, the file over a recipe; "
        "paths in it are relative to the working directory",
    )
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
    tokenizer_options: dict | None = option(
        None,
        group="data",
        flags=("--tokenizer-options",),
        help="options of the tokenizer strategy as a JSON object, e.g. '{\"vocab_size\": 4000}' for bpe (an "
        "option the strategy does not take is refused, naming those it takes)",
    )
    num_proc: int | None = option(
        None, group="data", check=positive, run_only=True, help="processes for tokenizing the corpus"
    )
    skip_bad_files: bool = option(
        False, group="data", help="skip corpus files that are not UTF-8 text (reported) instead of stopping"
    )
    val_fraction: float = option(
        0.1,
        group="data",
        check=fraction,
        help="share of the corpus held out for validation: whole documents (seeded), topped up with the tail of "
        "the largest document where they are less than one window",
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
    position_options: dict | None = option(
        None,
        group="model",
        flags=("--position-options",),
        help="options of the positional strategy as a JSON object, e.g. '{\"theta\": 500000}' for rope",
    )
    position_encoding_layers: list[str] | None = option(
        None,
        group="model",
        flags=("--position-encoding-layers",),
        help="a positional strategy per layer, given once per layer in order (e.g. rope x3 then none), to mix "
        "any registered strategies (default: --position-encoding in every layer)",
    )
    nope_every: int | None = option(
        None,
        group="model",
        check=positive,
        help="leave every N-th layer without positions (NoPE), as SmolLM3 does with N=4",
    )
    sliding_window: int | None = option(
        None,
        group="model",
        check=positive,
        help="each token attends to at most this many tokens (itself included)",
    )
    random_positions_max: int | None = option(
        None,
        group="model",
        check=positive,
        help="randomized positions (Ruoss et al. 2023): train with sorted positions sampled from [0, N)",
    )
    context_length: int | None = preset_override("context length")
    emb_dim: int | None = preset_override("embedding width")
    n_heads: int | None = preset_override("attention heads")
    n_layers: int | None = preset_override("layer count")
    drop_rate: float | None = preset_override("dropout rate", check=probability)
    initialization: str = option(
        "gpt2",
        group="model",
        choices=("gpt2", "torch"),  # HFGPTConfig.initialization's (not imported: --help stays light)
        help="how fresh weights are drawn: gpt2 is GPT-2's N(0, 0.02) with the residual projections scaled; "
        "torch is each layer's PyTorch default (N(0, 1) embeddings, Kaiming-uniform linear layers), as the "
        "book's GPTModel",
    )
    tie_word_embeddings: bool = option(
        True,
        group="model",
        negative_flag="--untie-embeddings",
        help="give the output head weights of its own instead of sharing the token embedding's (GPT-2 shares "
        "them; the book's GPTModel does not: 163M parameters at GPT-2 124M's shape)",
    )
    init_from: str | None = option(
        None,
        group="model",
        check=not_empty,
        help="start from the weights of a saved model instead of random ones: an hfgpt model directory (its "
        "tokenizer is reused) or a GPT-2 checkpoint directory (GPT2LMHeadModel's save_pretrained; needs "
        "--tokenizer gpt2-bpe). The model's shape comes from it; only --drop-rate may change",
    )

    # training
    output_dir: str = option(
        "runs/verdict",
        group="training",
        run_only=True,
        check=not_empty,
        help="where the trained model is saved",
    )
    epochs: float = option(40.0, group="training", check=positive, help="passes over the training windows")
    max_steps: int | None = option(
        None,
        group="training",
        check=positive,
        help="stop after this many optimizer steps (default: --epochs)",
    )
    batch_size: int = option(
        2, group="training", check=positive, help="windows per forward pass (micro-batch) and device"
    )
    gradient_accumulation_steps: int = option(
        1,
        group="training",
        check=positive,
        help="micro-batches whose gradients make one optimizer step: the step trains on batch-size x this x "
        "devices windows, with the losses of that larger batch (same data order, float rounding aside)",
    )
    learning_rate: float = option(
        1e-3,
        group="training",
        flags=("--learning-rate", "--lr"),
        check=positive,
        help="peak learning rate (AdamW)",
    )
    lr_scheduler: str = option(
        "cosine",
        group="training",
        choices=LR_SCHEDULERS,
        help="learning-rate schedule after the warm-up: cosine and linear decay to 0, cosine_with_min_lr to "
        "--min-lr (default: a tenth of the peak), constant keeps the peak",
    )
    min_lr: float | None = option(
        None,
        group="training",
        check=positive,
        help="the learning rate cosine decays to, below the peak (turns --lr-scheduler cosine into "
        "cosine_with_min_lr; refused with linear and constant)",
    )
    warmup_steps: int = option(
        10,
        group="training",
        check=non_negative,
        help="steps of linear warm-up from 0 to the peak learning rate",
    )
    warmup_ratio: float | None = option(
        None,
        group="training",
        check=probability,
        help="warm up over this share of the run's optimizer steps instead of --warmup-steps (e.g. 0.05)",
    )
    weight_decay: float = option(0.1, group="training", check=non_negative, help="AdamW weight decay")
    max_grad_norm: float = option(
        1.0, group="training", check=non_negative, help="clip the gradient to this norm; 0 does not clip"
    )
    seed: int = option(123, group="training", check=non_negative, help="random seed: same seed, same losses")
    split_seed: int | None = option(
        None,
        group="data",
        check=non_negative,
        help="seed of the held-out split (and so of a tokenizer learned from the training split) (default: "
        "--seed); runs that differ only in --seed then differ only in initialisation and data order",
    )
    eval_every: int | None = option(
        None,
        group="training",
        run_only=True,
        check=positive,
        help="log and validate every N steps (default: 20, or 1/50 of the run's steps when that is more)",
    )
    eval_batch_size: int = option(
        8, group="training", run_only=True, check=positive, help="windows per validation step and device"
    )
    max_eval_tokens: int = option(
        1_000_000,
        group="training",
        run_only=True,
        check=positive,
        help="validate on at most this many held-out tokens, the same windows at every validation (seeded)",
    )
    save_every: int | None = option(
        None,
        group="training",
        run_only=True,
        check=positive,
        help="checkpoint every N steps (default: 10 x eval-every)",
    )
    mixed_precision: str = option(
        "auto",
        group="training",
        choices=MIXED_PRECISION,
        help="autocast precision: auto is bf16 on a CUDA GPU that has it, else fp16 (with a loss scaler) on "
        "CUDA, else none (the CPU); the choice is printed",
    )
    dataloader_workers: int | None = option(
        None,
        group="training",
        check=non_negative,
        run_only=True,
        help="processes loading batches beside training, into pinned memory on a GPU (default: 2 on a CUDA "
        "GPU, 0 on the CPU, whose cores train)",
    )
    report_to: str = option(
        "none",
        group="training",
        choices=REPORT_TO,
        run_only=True,
        help="also log losses, learning rate and throughput to TensorBoard (event files in OUTPUT_DIR/"
        "tensorboard; pip install 'hfgpt[tensorboard]') or Weights & Biases (pip install wandb)",
    )
    cpu: bool = option(
        False, group="training", run_only=True, help="train on the CPU even when a GPU is present"
    )
    compile: bool = option(
        False,
        group="training",
        run_only=True,
        help="torch.compile the model: faster steps on a GPU, after a compilation",
    )
    overwrite: bool = option(
        False,
        group="training",
        run_only=True,
        help="replace a model already in --output-dir, once the new run has finished",
    )
    resume: bool = option(
        False, group="training", run_only=True, help="continue an interrupted run from its last checkpoint"
    )
    show_progress: bool = option(
        True, group="training", run_only=True, negative_flag="--no-progress", help="no progress bars"
    )

    # the sample printed after training
    prompt: str = option(
        "Every effort moves you",
        group="sample",
        run_only=True,
        check=not_empty,
        help="prompt for the sample printed after training",
    )
    max_new_tokens: int = option(
        50, group="sample", run_only=True, check=positive, help="tokens the sample adds to the prompt"
    )

    def __post_init__(self) -> None:
        self.corpus = list(self.corpus)
        if self.config is not None:
            fill_defaults(self, read_config_file(self.config, type(self)))
        if self.recipe in RECIPES:  # an unknown name is refused by `validate_fields`, naming the choices
            RECIPES[self.recipe].apply(self)
        validate_fields(self)
        if self.min_lr is not None:
            if self.lr_scheduler == "cosine":
                self.lr_scheduler = "cosine_with_min_lr"  # cosine, decaying to the floor instead of 0
            elif self.lr_scheduler != "cosine_with_min_lr":
                raise ConfigError(
                    f"--min-lr is the floor of a cosine decay; --lr-scheduler {self.lr_scheduler} has none: "
                    "use --lr-scheduler cosine_with_min_lr or leave --min-lr out"
                )
            if self.min_lr >= self.learning_rate:
                raise ConfigError(
                    f"--min-lr {self.min_lr:g} must be below the peak --learning-rate {self.learning_rate:g}"
                )
        layers = self.position_encoding_layers
        if layers and self.position_encoding not in layers:
            raise ConfigError(
                f"--position-encoding {self.position_encoding} is in no layer of --position-encoding-layers "
                f"({', '.join(layers)}): name the schedule's main strategy, e.g. --position-encoding {layers[0]}"
            )

    def model_overrides(self) -> dict[str, Any]:
        """The model fields given explicitly, replacing the preset's."""
        names = [f.name for f in fields(self) if f.metadata.get("preset_override")]
        return {name: getattr(self, name) for name in names if getattr(self, name) is not None}

    def tokenizer_settings(self) -> dict[str, Any]:
        """The options for the tokenizer strategy given explicitly (`--tokenizer-options`, `--vocab-size`)."""
        settings = dict(self.tokenizer_options or {})
        if self.vocab_size is not None:
            if settings.get("vocab_size", self.vocab_size) != self.vocab_size:
                raise ConfigError(
                    f"--vocab-size {self.vocab_size} and --tokenizer-options vocab_size "
                    f"{settings['vocab_size']} disagree: give one of them"
                )
            settings["vocab_size"] = self.vocab_size
        return settings

    def settings(self) -> dict[str, Any]:
        """What decides the trained model: every option but those that only say how the run is carried out."""
        return {f.name: getattr(self, f.name) for f in fields(self) if not f.metadata.get("run_only")}

    def warmup(self) -> float:
        """Trainer's `warmup_steps`: a step count, or the share of the run (< 1) that `--warmup-ratio` gives."""
        return self.warmup_ratio if self.warmup_ratio is not None else self.warmup_steps

    def lr_scheduler_kwargs(self) -> dict[str, Any]:
        """The schedule's own arguments: cosine_with_min_lr's floor, `--min-lr` or a tenth of the peak."""
        if self.lr_scheduler != "cosine_with_min_lr":
            return {}
        return {"min_lr": self.min_lr} if self.min_lr is not None else {"min_lr_rate": 0.1}


def _config_keys(cls) -> dict[str, str]:
    """Every spelling of an option a config file may use -> its field: the field name, and each flag without
    its dashes, with `-` or `_` (`learning_rate`, `learning-rate`, `lr`)."""
    keys = {}
    for f in fields(cls):
        keys[f.name] = f.name
        for flag in f.metadata.get("flags") or ():
            bare = flag.lstrip("-")
            keys[bare] = keys[bare.replace("-", "_")] = f.name
        keys[f.name.replace("_", "-")] = f.name
    return keys


def _coerce(value: Any, annotation: Any) -> Any:
    """A file's value in the field's type where the file format left it a string: YAML 1.1 reads `1e-3` (no
    dot) as text, and a list option may be given one value."""
    union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    args = [a for a in typing.get_args(annotation) if a is not type(None)] if union else [annotation]
    if isinstance(value, str):
        for kind in (int, float):
            if kind in args:
                try:
                    number = kind(value)
                except ValueError:
                    continue
                return number if kind is int or math.isfinite(number) else value
        if any(typing.get_origin(a) is list for a in args):
            return [value]
    if isinstance(value, int) and not isinstance(value, bool) and float in args and int not in args:
        return float(value)
    return value


def read_config_file(path: str, cls: type = None) -> dict[str, Any]:
    """The options in a YAML or JSON file, by field name, each value checked as the option checks it.

    Raises:
        ConfigError: the file is missing or unreadable, is not a mapping, names options `hfgpt train` does not
            have (all named), or holds a value its option refuses (named with the file).
    """
    import yaml

    cls = cls or TrainArguments
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"--config {path}: no such file")
    try:
        text = file.read_text(encoding="utf-8")
        data = json.loads(text) if file.suffix.lower() == ".json" else yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as exc:
        problem = " ".join(str(exc).split())
        raise ConfigError(f"--config {path} is not readable YAML or JSON: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"--config {path} must hold option names and values, got a {type(data).__name__}")
    keys = _config_keys(cls)
    unknown = [str(key) for key in data if str(key) not in keys]
    if unknown:
        raise ConfigError(
            f"--config {path}: unknown option{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} (see "
            "`hfgpt train --help`; write names as learning_rate or learning-rate)"
        )
    hints = typing.get_type_hints(cls)
    by_name = {f.name: f for f in fields(cls)}
    values: dict[str, Any] = {}
    for key, value in data.items():
        name = keys[str(key)]
        if name == "config":
            raise ConfigError(f"--config {path} names another config file: merge the two into one")
        if name in values:
            raise ConfigError(f"--config {path} gives {flag_of(by_name[name])} twice (as {key} too)")
        value = _coerce(value, hints[name])
        if problem := field_problem(by_name[name], value, hints[name]):
            raise ConfigError(f"--config {path}: {key} {problem}, got {value!r}")
        values[name] = list(value) if isinstance(value, tuple) else value
    return values


def resolve_mixed_precision(choice: str, cpu: bool) -> tuple[str, str]:
    """`(precision, why)`: `--mixed-precision auto` made concrete for this machine (`no`, `bf16` or `fp16`).

    auto is bf16 on a CUDA GPU that supports it (Ampere and later), fp16 with a loss scaler on an older CUDA
    GPU, and no autocast on the CPU (or another accelerator), where it does not pay.
    """
    import torch

    cuda = torch.cuda.is_available() and not cpu
    if choice != "auto":
        return choice, "as asked"
    if not cuda:
        on_cpu = cpu or not torch.accelerator.is_available()
        return "no", "auto: training on the CPU" if on_cpu else "auto: autocast is chosen on CUDA GPUs only"
    name = torch.cuda.get_device_name()
    if torch.cuda.is_bf16_supported():
        return "bf16", f"auto: {name} supports bfloat16"
    return "fp16", f"auto: {name} has no bfloat16; float16 with a loss scaler"


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


__all__ = ["TrainArguments", "read_config_file", "resolve_mixed_precision", "trainer_arguments"]
