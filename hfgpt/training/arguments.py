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

from dataclasses import dataclass, fields
from typing import Any

from hfgpt.errors import ConfigError
from hfgpt.options import fraction, non_negative, not_empty, option, positive, probability, validate_fields


def preset_override(what: str, check=positive):
    """A model option that replaces the size preset's `what` when given (`TrainArguments.model_overrides`)."""
    return option(
        None, group="model", check=check, help=f"override the preset's {what}", preset_override=True
    )


@dataclass
class TrainArguments:
    """Everything `hfgpt train` needs; each field is one command-line option (see `hfgpt train --help`)."""

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
    context_length: int | None = preset_override("context length")
    emb_dim: int | None = preset_override("embedding width")
    n_heads: int | None = preset_override("attention heads")
    n_layers: int | None = preset_override("layer count")
    drop_rate: float | None = preset_override("dropout rate", check=probability)

    # training
    output_dir: str = option(
        "runs/verdict",
        group="training",
        run_only=True,
        check=not_empty,
        help="where the trained model is saved",
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
    weight_decay: float = option(0.1, group="training", check=non_negative, help="AdamW weight decay")
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
        "no", group="training", choices=("no", "fp16", "bf16"), help="autocast precision on a GPU"
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
        validate_fields(self)

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


__all__ = ["TrainArguments", "trainer_arguments"]
