"""Pretraining a GPT on a text corpus with transformers' Trainer (what `hfgpt train` runs).

    corpus (hfgpt.data.sources) -> held-out split -> tokenizer strategy -> windows (hfgpt.data.windows)
    -> HFGPTForCausalLM -> Trainer (accelerate places it on CPU/GPU; `accelerate launch` runs several
    processes) -> an output directory that AutoModelForCausalLM/AutoTokenizer load, plus loss_curve.png.

Everything that can be checked is checked before the corpus is read: the options, the output directory,
the strategies, the model config, the model `--init-from` names and the packages `--report-to` needs. The
run works in `<output_dir>.partial/` and publishes the finished model at the end (see
`hfgpt.training.outputs`).

While it trains the run prints one line per logging interval and per validation, and at the end where its
time went and its steady-state speed (`hfgpt.training.progress`). Validation asks the model for the loss
only: no logits are computed, kept or gathered.

A run killed at any instant ends, once rerun with `--resume`, with the weights an uninterrupted run writes:
the run first recovers what the kill left (`outputs.recover`), then continues from the newest checkpoint
that loads (damaged ones are reported and skipped); a run killed after training ended resumes from its
final checkpoint and only saves and publishes, and a run killed while publishing is published by the
recovery. The history (losses against tokens seen) is rebuilt from Trainer's log, which a checkpoint
carries, so a resumed run reports the same final losses.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from transformers import Trainer

from hfgpt.training.arguments import TrainArguments, resolve_mixed_precision, trainer_arguments
from hfgpt.training.mfu import cuda_peak_flops, model_flops_per_token
from hfgpt.training.outputs import RunDirectory, run_history, stderr_report
from hfgpt.training.progress import ProgressPrinter, RunClock, Throughput


@dataclass
class TrainResult:
    """What a pretraining run reports.

    Args:
        output_dir (`Path`): where the model was published.
        history (`list[dict]`): losses by optimizer step (`training_log.json`'s history): `loss` is the mean
            training loss of the logging interval ending at that step, `eval_loss` the validation loss there.
        final_train_loss (`float`, *optional*): the mean training loss of the last logging interval, steps
            `final_train_loss_steps` (first, last; the run always logs at its last step), in training mode
            (dropout on); the last `loss` of `history`.
        final_eval_loss (`float`, *optional*): the validation loss at the last step.
        sample (`str`, *optional*): the sample generated after training (main process only).
        tokens_trained (`int`): tokens trained on by this call (a resumed run: since its checkpoint).
        times (`dict[str, float]`): this call's wall time by phase: prepare (reading and windowing the corpus),
            warmup (the first steps: compilation, kernel choice), train (the steps after them), validate, save
            (checkpoints and the final model), other (building the model, the sample...), total.
        warmup_steps / steady_steps (`int`): the steps in the warmup and train phases.
        steady_seconds (`float`): the training time of the steady steps (validation and saving excluded).
        tokens_per_step (`int`): tokens per optimizer step over every process and micro-batch.
        flops_per_token (`float`): the model's training FLOPs per token (`hfgpt.training.mfu`).
        device (`str`, *optional*): the CUDA device's name; None on the CPU.
        peak_flops (`float`, *optional*): the dense bf16 peak of all the run's devices together, when known.
    """

    output_dir: Path
    history: list[dict]
    final_train_loss: float | None
    final_eval_loss: float | None
    sample: str | None
    final_train_loss_steps: tuple[int, int] | None = None
    tokens_trained: int = 0
    times: dict[str, float] = field(default_factory=dict)
    warmup_steps: int = 0
    steady_steps: int = 0
    steady_seconds: float = 0.0
    tokens_per_step: int = 0
    flops_per_token: float = 0.0
    device: str | None = None
    peak_flops: float | None = None

    @property
    def seconds(self) -> float:
        """This call's wall time, preparing the data to publishing the model."""
        return self.times.get("total", 0.0)

    def _steady_rates(self) -> dict[str, float]:
        if not self.tokens_per_step:
            return {}
        throughput = Throughput(self.tokens_per_step, self.flops_per_token, self.peak_flops)
        return throughput.rates(self.steady_steps, self.steady_seconds)

    @property
    def tokens_per_second(self) -> float | None:
        """Steady-state training speed: the steps after the warm-up over their training time alone."""
        return self._steady_rates().get("tokens_per_second")

    @property
    def mfu(self) -> float | None:
        """Model FLOPs utilisation of the steady state (`tokens_per_second`), on a GPU whose peak is known."""
        return self._steady_rates().get("mfu")

    def final(self) -> dict[str, Any]:
        """The run's final values by clear names, as `training_log.json` records them under "final"."""
        first, last = self.final_train_loss_steps or (None, None)
        return {
            "train_loss": self.final_train_loss,
            "train_loss_is": "the mean training loss of the last logging interval (dropout on)",
            "train_loss_steps": [first, last] if last is not None else None,
            "eval_loss": self.final_eval_loss,
        }


@dataclass
class Prepared:
    """What a run trains on: the tokenizer, the model config and the training/validation windows."""

    tokenizer: Any
    config: Any
    max_length: int
    train_set: Any
    val_set: Any
    held_out: str = ""  # what the validation split holds, one line (`hfgpt.data.split.Split.describe`)


def build_config(args: TrainArguments, vocab_size: int | None = None, tokenizer=None):
    """The model config: the preset, the explicit model options, and the tokenizer's size and special ids; with
    `--init-from`, the saved model's config (`--drop-rate` applied)."""
    from hfgpt.configuration_hfgpt import HFGPTConfig

    if args.init_from:
        return initial_config(args)

    fields: dict[str, Any] = {
        "position_encoding": args.position_encoding,
        "position_encoding_kwargs": dict(args.position_options or {}),
        **args.model_overrides(),
    }
    for name in ("position_encoding_layers", "nope_every", "sliding_window", "random_positions_max"):
        if getattr(args, name) is not None:
            fields[name] = getattr(args, name)
    fields.update(initialization=args.initialization, tie_word_embeddings=args.tie_word_embeddings)
    if tokenizer is not None:
        eos = tokenizer.eos_token_id
        fields.update(
            vocab_size=len(tokenizer),
            bos_token_id=tokenizer.bos_token_id if tokenizer.bos_token_id is not None else eos,
            eos_token_id=eos,
            pad_token_id=tokenizer.pad_token_id,
            tokenizer_class=type(tokenizer).__name__,
        )
    return HFGPTConfig.from_preset(args.preset, **fields)


def window_length(args: TrainArguments, config) -> tuple[int, int]:
    """`(max_length, stride)` of the training windows, checked against what the positions can encode."""
    from hfgpt.errors import ConfigError
    from hfgpt.position_encoding import max_positions

    max_length = args.max_length or config.context_length
    limit = max_positions(config)
    if limit is not None and max_length > limit:
        raise ConfigError(
            f"--max-length {max_length} is longer than the {limit} positions position_encoding="
            f"{config.position_encoding!r} can encode (its context length); lower --max-length or raise "
            "--context-length"
        )
    return max_length, args.stride or max_length


def check_strategies(args: TrainArguments) -> None:
    """Unknown strategies, options a strategy does not take and impossible model shapes fail here, and so does
    a model `--init-from` names that cannot be continued with these options."""
    from hfgpt.plugins import get_tokenizer_class
    from hfgpt.position_encoding import check_position_options
    from hfgpt.tokenization.strategies import check_strategy_options

    check_strategy_options(args.tokenizer, get_tokenizer_class(args.tokenizer), args.tokenizer_settings())
    if args.init_from:
        check_init_from(args)
    config = build_config(args)
    check_position_options(config)
    window_length(args, config)


# --- --init-from: continuing from a saved hfgpt model or a GPT-2 checkpoint ---------------------------------
# TrainArguments model options -> the config field they decide (checked against the saved model's)
MODEL_OPTIONS = {
    "position_encoding": "position_encoding",
    "position_options": "position_encoding_kwargs",
    "position_encoding_layers": "position_encoding_layers",
    "nope_every": "nope_every",
    "sliding_window": "sliding_window",
    "random_positions_max": "random_positions_max",
    "context_length": "context_length",
    "emb_dim": "emb_dim",
    "n_heads": "n_heads",
    "n_layers": "n_layers",
    "initialization": "initialization",
    "tie_word_embeddings": "tie_word_embeddings",
}


def init_kind(directory: str) -> str:
    """ "hfgpt" or "gpt2": what the model directory `--init-from` names holds, checked (config and weights)."""
    from hfgpt.errors import ConfigError
    from hfgpt.loading import check_model_dir

    path = check_model_dir(directory)
    try:
        kind = json.loads((path / "config.json").read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--init-from {directory}: config.json is not readable ({exc})") from None
    if kind not in ("hfgpt", "gpt2"):
        raise ConfigError(
            f"--init-from {directory} holds a {kind!r} model; hfgpt continues from hfgpt models and GPT-2 "
            "checkpoints (model_type hfgpt or gpt2)"
        )
    return kind


def initial_config(args: TrainArguments):
    """The config of the model `--init-from` names (a GPT-2 checkpoint's converted), with `--drop-rate`."""
    from transformers import GPT2Config

    from hfgpt.configuration_hfgpt import HFGPTConfig
    from hfgpt.convert_gpt2 import config_from_gpt2

    if init_kind(args.init_from) == "gpt2":
        config = config_from_gpt2(GPT2Config.from_pretrained(args.init_from))
    else:
        config = HFGPTConfig.from_pretrained(args.init_from)
    if args.drop_rate is not None:
        config.drop_rate = args.drop_rate
    return config


def _strategy_name(class_name: str | None) -> str | None:
    """The tokenizer strategy whose class is `class_name` (`GPT2BPETokenizer` -> gpt2-bpe), if one is known."""
    from hfgpt.plugins import get_tokenizer_class, strategies

    for name in strategies("tokenizer"):
        try:
            if get_tokenizer_class(name).__name__ == class_name:
                return name
        except Exception:  # noqa: BLE001 - a broken plugin only costs the name in a message
            continue
    return None


def check_init_from(args: TrainArguments) -> None:
    """Refuse, in one line and before any work, a model `--init-from` names that these options cannot continue:
    another tokenizer than the one its ids belong to, or a model option that would change its shape."""
    from hfgpt.errors import ConfigError
    from hfgpt.loading import check_tokenizer_dir
    from hfgpt.options import flag_of
    from hfgpt.plugins import get_tokenizer_class
    from hfgpt.tokenization.strategies import fixed_vocabulary

    directory, kind = args.init_from, init_kind(args.init_from)
    config = initial_config(args)
    wanted = get_tokenizer_class(args.tokenizer)
    saved = "GPT2BPETokenizer" if kind == "gpt2" else config.tokenizer_class
    if saved and wanted.__name__ != saved:
        name = _strategy_name(saved)
        what = "a GPT-2 checkpoint" if kind == "gpt2" else "trained"
        raise ConfigError(
            f"--init-from {directory} is {what} with the {saved} tokenizer, whose ids --tokenizer "
            f"{args.tokenizer} would not give: pass --tokenizer {name or saved}"
        )
    if kind == "hfgpt" and (args.tokenizer_options or args.vocab_size):
        raise ConfigError(
            f"--init-from {directory} brings its tokenizer: leave out --vocab-size and --tokenizer-options"
        )
    if kind == "hfgpt" and not (Path(directory) / "tokenizer_config.json").is_file():
        if not fixed_vocabulary(wanted):  # a learned vocabulary cannot be learned again to the same ids
            check_tokenizer_dir(directory)
    for option_name, config_name in MODEL_OPTIONS.items():
        option = TrainArguments.__dataclass_fields__[option_name]
        given = getattr(args, option_name)
        if given is None or given == option.default:
            continue
        saved_value = getattr(config, config_name, None)
        if config_name == "position_encoding_kwargs":
            saved_value = dict(saved_value or {})
        if given != saved_value:
            # a bool given away from its default was given by its negative flag (--untie-embeddings), alone
            flag = option.metadata.get("negative_flag") or flag_of(option)
            typed = flag if option.metadata.get("negative_flag") else f"{flag} {given}"
            raise ConfigError(
                f"{typed} disagrees with the model in {directory} ({config_name} {saved_value}): "
                f"--init-from continues that model as it is; leave {flag} out"
            )
    if args.preset != TrainArguments.__dataclass_fields__["preset"].default:
        from hfgpt.configuration_hfgpt import HFGPTConfig

        preset = HFGPTConfig.from_preset(args.preset)
        shape = ("emb_dim", "n_heads", "n_layers")
        if any(getattr(preset, name) != getattr(config, name) for name in shape):
            raise ConfigError(
                f"--preset {args.preset} is not the shape of the model in {directory} (emb_dim {config.emb_dim}, "
                f"{config.n_heads} heads, {config.n_layers} layers): --init-from continues that model as it is; "
                "leave --preset out"
            )


def initial_tokenizer(args: TrainArguments):
    """The tokenizer a model `--init-from` names was trained with: the one saved beside it, or GPT-2's. None
    without `--init-from` or when the strategy builds it (`fixed_tokenizer`)."""
    from transformers import AutoTokenizer

    from hfgpt.errors import ConfigError

    if not args.init_from or init_kind(args.init_from) == "gpt2":
        return None
    if not (Path(args.init_from) / "tokenizer_config.json").is_file():
        return None  # a fixed vocabulary (checked by check_init_from): the strategy builds the same one
    tokenizer = AutoTokenizer.from_pretrained(args.init_from)
    vocab = initial_config(args).vocab_size
    if len(tokenizer) != vocab:
        raise ConfigError(
            f"--init-from {args.init_from}: its tokenizer has {len(tokenizer):,} tokens and its model "
            f"{vocab:,}: the directory was assembled from two runs; restore the run's own tokenizer"
        )
    return tokenizer


def initial_model(args: TrainArguments, config):
    """The model `--init-from` names, built from `config` (its own, `--drop-rate` applied) with its weights."""
    import torch

    from hfgpt.convert_gpt2 import from_gpt2
    from hfgpt.modeling_hfgpt import HFGPTForCausalLM

    if init_kind(args.init_from) == "gpt2":
        source = from_gpt2(args.init_from)
    else:
        source = HFGPTForCausalLM.from_pretrained(args.init_from)
    model = HFGPTForCausalLM(config)
    with torch.no_grad():
        model.load_state_dict(source.state_dict(), strict=True)  # float32 whatever the checkpoint's dtype
    return model


def check_environment(args: TrainArguments, cpu: bool) -> None:
    """Options that depend on the machine, checked before any work: the packages `--report-to` needs, and
    float16 autocast, which needs a CUDA GPU."""
    import importlib.util

    import torch

    from hfgpt.errors import ConfigError
    from hfgpt.training.arguments import REPORT_TO_PACKAGES

    if args.report_to in REPORT_TO_PACKAGES:
        package, install = REPORT_TO_PACKAGES[args.report_to]
        if importlib.util.find_spec(package) is None:
            raise ConfigError(f"--report-to {args.report_to} needs {package}: pip install '{install}'")
    if args.mixed_precision == "fp16" and (cpu or not torch.cuda.is_available()):
        raise ConfigError(
            "--mixed-precision fp16 needs a CUDA GPU (its loss scaler is CUDA's); use bf16 or auto on the CPU"
        )


def check_corpus(args: TrainArguments) -> None:
    """Corpus paths that name nothing fail before anything is read or written."""
    from hfgpt.data.sources import expand_paths, is_saved_dataset

    if args.corpus and not (len(args.corpus) == 1 and is_saved_dataset(args.corpus[0])):
        expand_paths(args.corpus)


def read_corpus(args: TrainArguments):
    """The corpus as a dataset of non-blank documents (the report of skipped files goes to stderr)."""
    from hfgpt.data.sources import drop_blank, load_corpus

    corpus = load_corpus(
        args.corpus, text_column=args.text_column, skip_bad_files=args.skip_bad_files, report=stderr_report
    )
    return drop_blank(corpus, args.text_column)


def fixed_tokenizer(args: TrainArguments):
    """The run's tokenizer when its vocabulary is fixed (GPT-2's): it exists before the corpus is split. None for
    strategies that learn their vocabulary, from the training split."""
    from hfgpt.plugins import get_tokenizer_class
    from hfgpt.tokenization.strategies import build_tokenizer, fixed_vocabulary

    if not fixed_vocabulary(get_tokenizer_class(args.tokenizer)):
        return None
    return build_tokenizer(args.tokenizer, None, **args.tokenizer_settings())


def held_out_seed(args: TrainArguments) -> int:
    """The seed of the held-out split and of its validation sample: `--split-seed`, by default `--seed`."""
    return args.seed if args.split_seed is None else args.split_seed


def split_corpus(args: TrainArguments, corpus, min_tokens: int, tokenizer=None):
    """`(train, held_out, split)`: the held-out split of the run (`hfgpt.data.split`), as `window()` takes them.

    With a `tokenizer` (a fixed vocabulary) the corpus is tokenized once and documents are held out by their
    share of tokens (`train`/`held_out` hold token ids); without, by their share of bytes (they hold texts),
    so that a tokenizer can then learn its vocabulary from the training documents only. `hfgpt compare` calls
    this too: every strategy is evaluated on the documents its run held out.
    """
    from hfgpt.data import split
    from hfgpt.data.stream import tokenize

    if tokenizer is not None:
        source = tokenize(corpus, tokenizer, args.text_column, args.num_proc)
        column, unit = "input_ids", "tokens"
    else:
        source, column, unit = corpus, args.text_column, "bytes"
    chosen = split.choose(
        split.row_sizes(source, column, unit), args.val_fraction, held_out_seed(args), min_tokens, unit
    )
    return (*split.apply(chosen, source, column), chosen)


def prepare(args: TrainArguments) -> Prepared:
    """Read the corpus, hold out validation text, build the tokenizer and config, window both splits."""
    from hfgpt.data.sources import iter_texts
    from hfgpt.data.windows import window
    from hfgpt.errors import DataError
    from hfgpt.generation import check_fits, prompt_ids
    from hfgpt.position_encoding import max_positions
    from hfgpt.tokenization.strategies import build_tokenizer

    corpus = read_corpus(args)
    max_length, stride = window_length(args, build_config(args))
    tokenizer = initial_tokenizer(args) or fixed_tokenizer(args)
    train_source, val_source, held_out = split_corpus(args, corpus, max_length + 1, tokenizer)
    if tokenizer is None:  # learned from the training documents only
        texts = iter_texts(train_source, args.text_column)
        tokenizer = build_tokenizer(args.tokenizer, texts, **args.tokenizer_settings())
    config = build_config(args, tokenizer=tokenizer)
    check_fits(
        len(prompt_ids(tokenizer, args.prompt)),
        args.max_new_tokens,
        max_positions(config),
        config.position_encoding,
    )

    def windows(source, what: str):
        try:
            return window(
                source,
                tokenizer,
                max_length=max_length,
                stride=stride,
                text_column=args.text_column,
                num_proc=args.num_proc,
            )
        except DataError as exc:
            raise DataError(f"{what} split: {exc}") from None

    val_windows = windows(val_source, "validation")
    most = max(1, args.max_eval_tokens // max_length)
    if len(val_windows) > most:  # the same seeded sample at every validation, so the curve is comparable
        val_windows = val_windows.shuffle(seed=held_out_seed(args)).select(range(most))
    train_windows = windows(train_source, "training")
    return Prepared(tokenizer, config, max_length, train_windows, val_windows, held_out.describe())


def pretraining_arguments(args: TrainArguments, staging: Path):
    """Trainer's arguments for a pretraining run (this also sets up the processes `accelerate launch` started)."""
    precision, _ = resolve_mixed_precision(args.mixed_precision, args.cpu)
    workers = dataloader_workers(args)
    return trainer_arguments(
        str(staging / "checkpoints"),
        label_names=["shift_labels"],
        epochs=args.epochs,
        max_steps=args.max_steps or -1,
        batch_size=args.batch_size,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        learning_rate=args.learning_rate,
        weight_decay=args.weight_decay,
        seed=args.seed,
        cpu=args.cpu,
        show_progress=args.show_progress,
        lr_scheduler_type=args.lr_scheduler,
        lr_scheduler_kwargs=args.lr_scheduler_kwargs(),
        warmup_steps=args.warmup(),
        max_grad_norm=args.max_grad_norm,
        eval_strategy="steps",
        per_device_eval_batch_size=args.eval_batch_size,
        eval_steps=args.eval_every or 20,  # set for the run's length by `schedule_evaluation`
        logging_steps=args.eval_every or 20,
        logging_first_step=True,
        save_strategy="steps",
        save_steps=args.save_every or 10 * (args.eval_every or 20),
        save_total_limit=2,
        dataloader_drop_last=False,  # one flag for train and eval: a short validation split must keep its batch
        dataloader_num_workers=workers,
        dataloader_persistent_workers=workers > 0,  # not a new pool of processes at every validation
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        torch_compile=args.compile,
        # validation wants the loss only: no logits computed (`PretrainingTrainer`), kept or gathered
        prediction_loss_only=True,
        # Trainer's NaN filter reads every step's loss on the host: a GPU synchronisation per step. A NaN loss
        # still shows in the logged mean, where it belongs.
        logging_nan_inf_filter=False,
        report_to=args.report_to if args.report_to == "wandb" else "none",  # TensorBoard: `add_reporting`
    )


def dataloader_workers(args: TrainArguments) -> int:
    """`--dataloader-workers`, by default 2 on a CUDA GPU (batches prepared beside the step, into pinned memory)
    and 0 on the CPU, whose cores are busy training."""
    import torch

    if args.dataloader_workers is not None:
        return args.dataloader_workers
    return 2 if torch.cuda.is_available() and not args.cpu else 0


def schedule_evaluation(args: TrainArguments, targs, data: Prepared, processes: int) -> int:
    """Validate (and log) every `--eval-every` steps, by default every 20 steps or 1/50 of the run, whichever
    is less often, so that validation stays a small share of a long run. Returns the run's optimizer steps."""
    batches_per_epoch = math.ceil(len(data.train_set) / (args.batch_size * processes))
    steps_per_epoch = max(1, math.ceil(batches_per_epoch / args.gradient_accumulation_steps))
    total = args.max_steps or math.ceil(args.epochs * steps_per_epoch)
    every = args.eval_every or max(20, total // 50)
    targs.eval_steps = targs.logging_steps = every
    targs.save_steps = args.save_every or 10 * every
    return total


class PretrainingTrainer(Trainer):
    """transformers' Trainer for windows of token ids.

    * Validation asks the model for the loss alone (`logits_to_keep` empty: the chunked loss, no
      `(tokens, vocabulary)` logits), which `prediction_loss_only` then does not gather either.
    * The targets are `shift_labels`; Trainer counts them across the micro-batches of an optimizer step as it
      counts `labels`, so accumulated losses are normalised by the step's tokens (on the device, no host read).
    * Validation and checkpoint saves are timed on the run's `clock`, so that training speed leaves them out.
    """

    clock: RunClock | None = None

    def _timed(self, phase: str):
        from contextlib import nullcontext

        return self.clock.phase(phase) if self.clock is not None else nullcontext()

    def evaluate(self, *args, **kwargs):
        with self._timed("validate"):
            return super().evaluate(*args, **kwargs)

    def _save_checkpoint(self, model, trial):
        with self._timed("save"):
            return super()._save_checkpoint(model, trial)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if not model.training and self.args.prediction_loss_only:
            import torch

            device = inputs["input_ids"].device
            inputs = {**inputs, "logits_to_keep": torch.empty(0, dtype=torch.long, device=device)}
        return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)

    def _get_num_items_in_batch(self, batch_samples, device):
        if batch_samples and "labels" not in batch_samples[0] and "shift_labels" in batch_samples[0]:
            # Trainer counts targets only for batches with `labels`; it takes `shift_labels` when present
            batch_samples = [{"labels": None, **batch} for batch in batch_samples]
        return super()._get_num_items_in_batch(batch_samples, device)


def build_trainer(args: TrainArguments, targs, data: Prepared, callbacks, clock: RunClock | None = None):
    from transformers import default_data_collator, set_seed

    from hfgpt.modeling_hfgpt import HFGPTForCausalLM

    set_seed(args.seed)
    model = initial_model(args, data.config) if args.init_from else HFGPTForCausalLM(data.config)
    trainer = PretrainingTrainer(
        model=model,
        args=targs,
        train_dataset=data.train_set,
        eval_dataset=data.val_set,
        processing_class=data.tokenizer,
        data_collator=default_data_collator,  # windows are fixed-length: nothing to pad
        callbacks=callbacks or None,
    )
    trainer.clock = clock
    return trainer


def add_reporting(args: TrainArguments, trainer, run: RunDirectory) -> None:
    """`--report-to tensorboard`: event files in the run's `tensorboard/` folder, published with the model
    (Trainer's default folder is inside the checkpoints, which publishing removes)."""
    if args.report_to != "tensorboard":
        return
    from transformers.integrations import TensorBoardCallback

    callback = TensorBoardCallback()
    callback.logging_dir = str(run.staging / "tensorboard")
    trainer.add_callback(callback)


def tokens_per_step(args: TrainArguments, trainer, data: Prepared) -> int:
    """Tokens one optimizer step trains on, over every process."""
    accumulation = trainer.args.gradient_accumulation_steps
    return args.batch_size * trainer.accelerator.num_processes * accumulation * data.max_length


def training_finished(checkpoint: Path, max_steps: int) -> bool:
    """Whether `checkpoint` was saved at the run's last step (a run killed before it published leaves it).

    The last step is `max_steps` when the run sets it, else the one Trainer planned when it saved `checkpoint`.
    """
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    last = max_steps if max_steps > 0 else state["max_steps"]
    return last > 0 and state["global_step"] >= last


def restore_final_checkpoint(trainer, checkpoint: Path) -> None:
    """Give `trainer` the weights and state (with its log) of the final checkpoint, without training.

    `trainer.train(resume_from_checkpoint=...)` from the last step of a run that ends mid-epoch trains one
    step more than the run asked for, so a resumed run would not end with the weights of an uninterrupted one.
    """
    from safetensors.torch import load_model
    from transformers import TrainerState

    trainer.state = TrainerState.load_from_json(str(checkpoint / "trainer_state.json"))
    load_model(trainer.model, str(checkpoint / "model.safetensors"), device=str(trainer.args.device))


def save_run(
    args: TrainArguments,
    trainer,
    data: Prepared,
    run: RunDirectory,
    history: list[dict],
    clock: RunClock | None = None,
    measured: dict[str, Any] | None = None,
) -> str | None:
    """Write the model, tokenizer, loss curve and log into the run's staging directory, mark it complete; return
    the sample.

    Every process calls it; the main process writes and gets the sample, the others get None. Under FSDP
    gathering the full weights for the save and every forward of the sharded model are collectives, so a
    main process doing them alone would wait forever for the others.
    """
    from contextlib import nullcontext

    from hfgpt.generation import generate_text
    from hfgpt.plots import plot_loss_curve

    model = trainer.model
    sample = generate_text(model, data.tokenizer, args.prompt, args.max_new_tokens)  # greedy: same everywhere
    with clock.phase("save") if clock is not None else nullcontext():
        if trainer.is_world_process_zero():
            run.staging.mkdir(parents=True, exist_ok=True)
            model.generation_config.save_pretrained(str(run.staging))
            title = f"hfgpt: {data.config.position_encoding} positions"
            plot_loss_curve(history, run.staging / "loss_curve.png", title=title)
        log = {
            "args": asdict(args),
            "held_out": data.held_out,
            "history": history,
            "final": result_of(run.output_dir, history, None).final(),
            "sample": sample,
        }
        if measured:
            log["speed"] = measured
        run.save(trainer, data.tokenizer, log)  # marks the directory complete, last
    return sample if trainer.is_world_process_zero() else None


def train(args: TrainArguments, callbacks: list | None = None) -> TrainResult:
    """Run a pretraining job as described by `args`; see the module docstring. `show_progress=False` silences
    every progress bar and informational log (`hfgpt.quiet`); the progress lines are printed either way."""
    from hfgpt.quiet import quiet

    with quiet(not args.show_progress):
        return _train(args, callbacks)


def _train(args: TrainArguments, callbacks: list | None) -> TrainResult:
    from accelerate import PartialState

    clock = RunClock()
    output_dir = Path(args.output_dir)
    check_environment(args, args.cpu)
    run = RunDirectory(output_dir, overwrite=args.overwrite, resume=args.resume)
    targs = pretraining_arguments(args, run.staging)
    processes = PartialState()  # after TrainingArguments, which set up the processes accelerate launched
    if processes.is_main_process:
        run.recover()  # before anything looks at the output directory
    processes.wait_for_everyone()
    run.check()
    if args.resume and run.finished():
        return finished_result(output_dir, processes.is_main_process)
    check_strategies(args)
    check_corpus(args)
    report = stderr_report if processes.is_main_process else (lambda message: None)
    with clock.phase("prepare"):
        data = prepare(args)  # the corpus is read and checked here: report nothing before it passes

    precision, why = resolve_mixed_precision(args.mixed_precision, args.cpu)
    report(f"hfgpt: mixed precision: {'none' if precision == 'no' else precision} ({why})")
    report(f"hfgpt: validation: {data.held_out}")
    run.report = report
    resume_from = run.resume_checkpoint()
    if processes.is_main_process:
        run.clear()  # leftovers of an earlier interrupted run that is not being resumed
    processes.wait_for_everyone()

    schedule_evaluation(args, targs, data, processes.num_processes)
    trainer = build_trainer(args, targs, data, callbacks, clock)
    flops_per_token = model_flops_per_token(trainer.model, data.max_length)  # before any sharding wraps it
    per_step = tokens_per_step(args, trainer, data)
    gpu = cuda_peak_flops() if trainer.args.device.type == "cuda" else None
    device, peak = gpu if gpu is not None else (None, None)
    peak_flops = peak * processes.num_processes if peak else None
    printer = ProgressPrinter.install(
        trainer,
        clock,
        Throughput(per_step, flops_per_token, peak_flops),
        bars=args.show_progress,
        eval_windows=len(data.val_set),
        window_tokens=data.max_length,
    )
    add_reporting(args, trainer, run)
    if resume_from is not None and training_finished(Path(resume_from), targs.max_steps):
        restore_final_checkpoint(trainer, Path(resume_from))
        first_step = trainer.state.global_step
    else:
        first_step = int(Path(resume_from).name.split("-")[-1]) if resume_from else 0
        trainer.train(resume_from_checkpoint=resume_from)
    measured = printer.measured()
    clock.add("warmup", measured["warmup_seconds"])
    clock.add("train", measured["steady_seconds"])
    step = trainer.state.global_step
    validate_at_last_step(trainer)
    history = run_history(trainer.state.log_history, per_step)
    sample = save_run(args, trainer, data, run, history, clock, speed_record(measured, per_step))
    if trainer.is_world_process_zero():
        with clock.phase("save"):
            run.publish()
    trainer.accelerator.wait_for_everyone()
    result = result_of(output_dir, history, sample)
    result.tokens_trained = (step - first_step) * per_step
    result.times = clock.breakdown()
    result.warmup_steps, result.steady_steps = measured["warmup_steps"], measured["steady_steps"]
    result.steady_seconds = measured["steady_seconds"]
    result.tokens_per_step, result.flops_per_token = per_step, flops_per_token
    result.device, result.peak_flops = device, peak_flops
    return result


def validate_at_last_step(trainer) -> None:
    """Validate at the run's last step unless Trainer did (it does when the last step is a validation step), so
    that the history ends with the final validation loss."""
    step = trainer.state.global_step
    if not any(r.get("step") == step and "eval_loss" in r for r in trainer.state.log_history):
        trainer.evaluate()


def speed_record(measured: dict[str, Any], tokens_per_step: int) -> dict[str, Any]:
    """The steady state as `training_log.json` records it under "speed"."""
    rates = Throughput(tokens_per_step).rates(measured["steady_steps"], measured["steady_seconds"])
    return {
        **measured,
        "tokens_per_step": tokens_per_step,
        "steady_tokens_per_second": rates.get("tokens_per_second"),
    }


def final_train_loss(history: list[dict]) -> tuple[float | None, tuple[int, int] | None]:
    """The last logged training loss and the steps it is the mean of: after the previous log, to its own."""
    logged = [r for r in history if "loss" in r]
    if not logged:
        return None, None
    first = logged[-2]["step"] + 1 if len(logged) > 1 else 1
    return logged[-1]["loss"], (first, logged[-1]["step"])


def result_of(output_dir: Path, history: list[dict], sample: str | None) -> TrainResult:
    loss, steps = final_train_loss(history)
    eval_losses = [r["eval_loss"] for r in history if "eval_loss" in r]
    return TrainResult(
        output_dir=output_dir,
        history=history,
        final_train_loss=loss,
        final_train_loss_steps=steps,
        final_eval_loss=eval_losses[-1] if eval_losses else None,
        sample=sample,
    )


def finished_result(output_dir: Path, main_process: bool) -> TrainResult:
    """What `--resume` reports for a run that already finished (and was published, perhaps by `recover`)."""
    log = json.loads((output_dir / "training_log.json").read_text())
    if main_process:
        print(f"hfgpt: nothing to resume: the run finished and {output_dir} holds its model", file=sys.stderr)
    return result_of(output_dir, log["history"], log.get("sample") if main_process else None)


__all__ = ["Prepared", "PretrainingTrainer", "TrainResult", "build_config", "prepare", "train"]
