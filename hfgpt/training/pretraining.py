"""Pretraining a GPT on a text corpus with transformers' Trainer (what `hfgpt train` runs).

    corpus (hfgpt.data.sources) -> held-out split -> tokenizer strategy -> windows (hfgpt.data.windows)
    -> HFGPTForCausalLM -> Trainer (accelerate places it on CPU/GPU; `accelerate launch` runs several
    processes) -> an output directory that AutoModelForCausalLM/AutoTokenizer load, plus loss_curve.png.

Everything that can be checked is checked before the corpus is read: the options, the output directory,
the strategies and the model config. The run works in `<output_dir>.partial/` and publishes the finished
model at the end (see `hfgpt.training.outputs`).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hfgpt.training.arguments import TrainArguments, trainer_arguments
from hfgpt.training.outputs import check_output_dir, latest_complete_checkpoint, publish, staging_dir


@dataclass
class TrainResult:
    output_dir: Path
    history: list[dict]
    final_train_loss: float | None
    final_eval_loss: float | None
    sample: str | None


@dataclass
class Prepared:
    """What a run trains on: the tokenizer, the model config and the training/validation windows."""

    tokenizer: Any
    config: Any
    max_length: int
    train_set: Any
    val_set: Any


def build_config(args: TrainArguments, vocab_size: int | None = None, tokenizer=None):
    """The model config: the preset, the explicit model options, and the tokenizer's size and special ids."""
    from hfgpt.configuration_hfgpt import HFGPTConfig

    fields: dict[str, Any] = {"position_encoding": args.position_encoding, **args.model_overrides()}
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

    max_length = args.max_length or config.context_length
    if config.position_encoding == "learned" and max_length > config.context_length:
        raise ConfigError(
            f"--max-length {max_length} is longer than the model's context length {config.context_length}; "
            "lower --max-length or raise --context-length"
        )
    return max_length, args.stride or max_length


def check_strategies(args: TrainArguments) -> None:
    """Unknown strategies, options a tokenizer does not take and impossible model shapes fail here."""
    from hfgpt.plugins import get_tokenizer_class
    from hfgpt.tokenization.strategies import check_strategy_options

    check_strategy_options(args.tokenizer, get_tokenizer_class(args.tokenizer), args.tokenizer_options())
    window_length(args, build_config(args))


def prepare(args: TrainArguments) -> Prepared:
    """Read the corpus, hold out validation text, build the tokenizer and config, window both splits."""
    from hfgpt.data.sources import iter_texts, load_corpus, split_corpus
    from hfgpt.data.windows import window
    from hfgpt.errors import DataError
    from hfgpt.generation import check_fits, prompt_ids
    from hfgpt.tokenization.strategies import build_tokenizer

    if not args.show_progress:
        from datasets.utils.logging import disable_progress_bar

        disable_progress_bar()
    column = args.text_column
    corpus = load_corpus(args.corpus, text_column=column)
    corpus = corpus.filter(
        lambda batch: [bool(t.strip()) for t in batch[column]], batched=True, desc="Reading"
    )
    if len(corpus) == 0:
        raise DataError("the corpus is empty (no non-whitespace text): pass files that contain text")
    train_docs, val_docs = split_corpus(corpus, args.val_fraction, args.seed, column)
    tokenizer = build_tokenizer(args.tokenizer, iter_texts(train_docs, column), **args.tokenizer_options())
    config = build_config(args, tokenizer=tokenizer)
    max_length, stride = window_length(args, config)
    limit = None if config.position_encoding != "learned" else config.context_length
    check_fits(len(prompt_ids(tokenizer, args.prompt)), args.max_new_tokens, limit, config.position_encoding)

    def windows(docs, what: str):
        try:
            return window(docs, tokenizer, max_length=max_length, stride=stride, text_column=column)
        except DataError as exc:
            raise DataError(f"{what} split: {exc}") from None

    return Prepared(
        tokenizer, config, max_length, windows(train_docs, "training"), windows(val_docs, "validation")
    )


def _loss_history_callback(history: list[dict], tokens_per_step: list[int]):
    from transformers import TrainerCallback

    class LossHistory(TrainerCallback):
        """Records losses against tokens seen (steps x global batch x window length)."""

        def on_log(self, targs, state, control, logs=None, **kwargs):
            record = {"step": state.global_step, "tokens_seen": state.global_step * tokens_per_step[0]}
            record.update({k: v for k, v in (logs or {}).items() if k in ("loss", "eval_loss")})
            if len(record) > 2:
                history.append(record)

    return LossHistory()


def pretraining_arguments(args: TrainArguments, staging: Path):
    """Trainer's arguments for a pretraining run (this also sets up the processes `accelerate launch` started)."""
    return trainer_arguments(
        str(staging / "checkpoints"),
        label_names=["shift_labels"],
        epochs=args.epochs,
        max_steps=args.max_steps or -1,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        weight_decay=args.weight_decay,
        seed=args.seed,
        cpu=args.cpu,
        show_progress=args.show_progress,
        lr_scheduler_type="cosine",  # decays to 0 over the run: the last epochs polish the memorisation
        warmup_steps=10,
        eval_strategy="steps",
        eval_steps=args.eval_every,
        logging_steps=args.eval_every,
        logging_first_step=True,
        save_strategy="steps",
        save_steps=args.save_every or 10 * args.eval_every,
        save_total_limit=2,
        dataloader_drop_last=False,  # one flag for train and eval: a short validation split must keep its batch
        bf16=args.mixed_precision == "bf16",
        fp16=args.mixed_precision == "fp16",
    )


def build_trainer(args: TrainArguments, targs, data: Prepared, history: list[dict], callbacks):
    from transformers import Trainer, default_data_collator, set_seed

    from hfgpt.modeling_hfgpt import HFGPTForCausalLM

    set_seed(args.seed)
    model = HFGPTForCausalLM(data.config)
    tokens_per_step: list[int] = []
    trainer = Trainer(
        model=model,
        args=targs,
        train_dataset=data.train_set,
        eval_dataset=data.val_set,
        processing_class=data.tokenizer,
        data_collator=default_data_collator,  # windows are fixed-length: nothing to pad
        callbacks=[_loss_history_callback(history, tokens_per_step), *(callbacks or [])],
    )
    tokens_per_step.append(
        args.batch_size
        * trainer.accelerator.num_processes
        * targs.gradient_accumulation_steps
        * data.max_length
    )
    return trainer


def save_run(args: TrainArguments, trainer, data: Prepared, staging: Path, history: list[dict]) -> str:
    """Write the model, tokenizer, loss curve and log into `staging`; return the sample continuation."""
    from hfgpt.generation import generate_text
    from hfgpt.training.plots import plot_loss_curve

    model = trainer.model
    trainer.save_model(str(staging))
    data.tokenizer.save_pretrained(str(staging))
    model.generation_config.save_pretrained(str(staging))
    plot_loss_curve(
        history, staging / "loss_curve.png", title=f"hfgpt: {data.config.position_encoding} positions"
    )
    (staging / "training_log.json").write_text(
        json.dumps({"args": asdict(args), "history": history}, indent=1)
    )
    return generate_text(model, data.tokenizer, args.prompt, args.max_new_tokens)


def train(args: TrainArguments, callbacks: list | None = None) -> TrainResult:
    """Run a pretraining job as described by `args`; see the module docstring."""
    from accelerate import PartialState

    from hfgpt.errors import ResumeError

    output_dir = Path(args.output_dir)
    check_output_dir(output_dir, args.overwrite, args.resume)
    check_strategies(args)
    data = prepare(args)

    staging = staging_dir(output_dir)
    resume_from = latest_complete_checkpoint(staging / "checkpoints") if args.resume else None
    if args.resume and resume_from is None:
        raise ResumeError(f"no complete checkpoint to resume from in {staging / 'checkpoints'}")
    targs = pretraining_arguments(args, staging)
    processes = PartialState()  # after TrainingArguments, which set up the processes accelerate launched
    if not args.resume and processes.is_main_process and staging.exists():
        shutil.rmtree(staging)  # leftovers of an earlier interrupted run that is not being resumed
    processes.wait_for_everyone()

    history: list[dict] = []
    trainer = build_trainer(args, targs, data, history, callbacks)
    trainer.train(resume_from_checkpoint=resume_from)
    evals = [r for r in history if "eval_loss" in r]
    if not evals or evals[-1]["step"] != trainer.state.global_step:
        trainer.evaluate()  # Trainer usually validates at the last step itself; LossHistory records either
        evals = [r for r in history if "eval_loss" in r]
    sample = None
    if trainer.is_world_process_zero():
        sample = save_run(args, trainer, data, staging, history)
        publish(staging, output_dir)
    trainer.accelerator.wait_for_everyone()

    train_losses = [r["loss"] for r in history if "loss" in r]
    return TrainResult(
        output_dir=output_dir,
        history=history,
        final_train_loss=train_losses[-1] if train_losses else None,
        final_eval_loss=evals[-1]["eval_loss"],
        sample=sample,
    )


__all__ = ["Prepared", "TrainResult", "build_config", "prepare", "train"]
