"""Pretraining a GPT on a text corpus with transformers' Trainer (what `hfgpt train` runs).

    corpus (hfgpt.data.sources) -> held-out split -> tokenizer strategy -> windows (hfgpt.data.windows)
    -> HFGPTForCausalLM -> Trainer (accelerate places it on CPU/GPU; `accelerate launch` runs several
    processes) -> an output directory that AutoModelForCausalLM/AutoTokenizer load, plus loss_curve.png.

Everything that can be checked is checked before the corpus is read: the options, the output directory,
the strategies and the model config. The run works in `<output_dir>.partial/` and publishes the finished
model at the end (see `hfgpt.training.outputs`).

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
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hfgpt.training.arguments import TrainArguments, trainer_arguments
from hfgpt.training.mfu import cuda_peak_flops, model_flops_per_token
from hfgpt.training.outputs import RunDirectory, run_history, stderr_report


@dataclass
class TrainResult:
    output_dir: Path
    history: list[dict]
    final_train_loss: float | None
    final_eval_loss: float | None
    sample: str | None
    tokens_trained: int = 0  # by this call (a resumed run: since the checkpoint)
    seconds: float = 0.0  # of training in this call, validation included
    flops_per_token: float = 0.0  # the model's training FLOPs per token (`hfgpt.training.mfu`)
    device: str | None = None  # the CUDA device's name; None on CPU
    peak_flops: float | None = None  # the dense bf16 peak of all the run's devices together, when known

    @property
    def tokens_per_second(self) -> float | None:
        return self.tokens_trained / self.seconds if self.tokens_trained and self.seconds else None

    @property
    def mfu(self) -> float | None:
        """Model FLOPs utilisation of this call's training (validation time included), on a known GPU."""
        if not (self.tokens_per_second and self.peak_flops and self.flops_per_token):
            return None
        return self.tokens_per_second * self.flops_per_token / self.peak_flops


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
    """The model config: the preset, the explicit model options, and the tokenizer's size and special ids."""
    from hfgpt.configuration_hfgpt import HFGPTConfig

    fields: dict[str, Any] = {
        "position_encoding": args.position_encoding,
        "position_encoding_kwargs": dict(args.position_options or {}),
        **args.model_overrides(),
    }
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
    """Unknown strategies, options a strategy does not take and impossible model shapes fail here."""
    from hfgpt.plugins import get_tokenizer_class
    from hfgpt.position_encoding import check_position_options
    from hfgpt.tokenization.strategies import check_strategy_options

    check_strategy_options(args.tokenizer, get_tokenizer_class(args.tokenizer), args.tokenizer_settings())
    config = build_config(args)
    check_position_options(config)
    window_length(args, config)


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
    tokenizer = fixed_tokenizer(args)
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
        per_device_eval_batch_size=args.eval_batch_size,
        eval_steps=args.eval_every or 20,  # set for the run's length by `schedule_evaluation`
        logging_steps=args.eval_every or 20,
        logging_first_step=True,
        save_strategy="steps",
        save_steps=args.save_every or 10 * (args.eval_every or 20),
        save_total_limit=2,
        dataloader_drop_last=False,  # one flag for train and eval: a short validation split must keep its batch
        bf16=args.mixed_precision == "bf16",
        fp16=args.mixed_precision == "fp16",
        torch_compile=args.compile,
    )


def schedule_evaluation(args: TrainArguments, targs, data: Prepared, processes: int) -> int:
    """Validate (and log) every `--eval-every` steps, by default every 20 steps or 1/50 of the run, whichever
    is less often, so that validation stays a small share of a long run. Returns the run's optimizer steps."""
    steps_per_epoch = math.ceil(len(data.train_set) / (args.batch_size * processes))
    total = args.max_steps or math.ceil(args.epochs * steps_per_epoch)
    every = args.eval_every or max(20, total // 50)
    targs.eval_steps = targs.logging_steps = every
    targs.save_steps = args.save_every or 10 * every
    return total


def build_trainer(args: TrainArguments, targs, data: Prepared, callbacks):
    from transformers import Trainer, default_data_collator, set_seed

    from hfgpt.modeling_hfgpt import HFGPTForCausalLM

    set_seed(args.seed)
    model = HFGPTForCausalLM(data.config)
    return Trainer(
        model=model,
        args=targs,
        train_dataset=data.train_set,
        eval_dataset=data.val_set,
        processing_class=data.tokenizer,
        data_collator=default_data_collator,  # windows are fixed-length: nothing to pad
        callbacks=callbacks or None,
    )


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
    args: TrainArguments, trainer, data: Prepared, run: RunDirectory, history: list[dict]
) -> str | None:
    """Write the model, tokenizer, loss curve and log into the run's staging directory, mark it complete; return
    the sample.

    Every process calls it; the main process writes and gets the sample, the others get None. Under FSDP
    gathering the full weights for the save and every forward of the sharded model are collectives, so a
    main process doing them alone would wait forever for the others.
    """
    from hfgpt.generation import generate_text
    from hfgpt.plots import plot_loss_curve

    model = trainer.model
    sample = generate_text(model, data.tokenizer, args.prompt, args.max_new_tokens)  # greedy: same everywhere
    if trainer.is_world_process_zero():
        run.staging.mkdir(parents=True, exist_ok=True)
        model.generation_config.save_pretrained(str(run.staging))
        title = f"hfgpt: {data.config.position_encoding} positions"
        plot_loss_curve(history, run.staging / "loss_curve.png", title=title)
    log = {"args": asdict(args), "held_out": data.held_out, "history": history, "sample": sample}
    run.save(trainer, data.tokenizer, log)  # marks the directory complete, last
    return sample if trainer.is_world_process_zero() else None


def train(args: TrainArguments, callbacks: list | None = None) -> TrainResult:
    """Run a pretraining job as described by `args`; see the module docstring. `show_progress=False` silences
    every progress bar and informational log (`hfgpt.quiet`)."""
    from hfgpt.quiet import quiet

    with quiet(not args.show_progress):
        return _train(args, callbacks)


def _train(args: TrainArguments, callbacks: list | None) -> TrainResult:
    from accelerate import PartialState

    output_dir = Path(args.output_dir)
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
    data = prepare(args)

    report = stderr_report if processes.is_main_process else (lambda message: None)
    report(f"hfgpt: validation: {data.held_out}")
    run.report = report
    resume_from = run.resume_checkpoint()
    if processes.is_main_process:
        run.clear()  # leftovers of an earlier interrupted run that is not being resumed
    processes.wait_for_everyone()

    schedule_evaluation(args, targs, data, processes.num_processes)
    trainer = build_trainer(args, targs, data, callbacks)
    flops_per_token = model_flops_per_token(trainer.model, data.max_length)  # before any sharding wraps it
    started = time.perf_counter()
    if resume_from is not None and training_finished(Path(resume_from), targs.max_steps):
        restore_final_checkpoint(trainer, Path(resume_from))
        first_step = trainer.state.global_step
    else:
        first_step = int(Path(resume_from).name.split("-")[-1]) if resume_from else 0
        trainer.train(resume_from_checkpoint=resume_from)
    seconds = time.perf_counter() - started
    step = trainer.state.global_step
    if not any(r.get("step") == step and "eval_loss" in r for r in trainer.state.log_history):
        trainer.evaluate()  # Trainer usually validates at the last step itself
    per_step = tokens_per_step(args, trainer, data)
    history = run_history(trainer.state.log_history, per_step)
    trained_tokens = (step - first_step) * per_step
    sample = save_run(args, trainer, data, run, history)
    if trainer.is_world_process_zero():
        run.publish()
    trainer.accelerator.wait_for_everyone()
    result = result_of(output_dir, history, sample)
    result.tokens_trained, result.seconds = trained_tokens, seconds
    result.flops_per_token = flops_per_token
    gpu = cuda_peak_flops() if trainer.args.device.type == "cuda" else None
    if gpu is not None:
        result.device, peak = gpu
        result.peak_flops = peak * processes.num_processes if peak else None
    return result


def result_of(output_dir: Path, history: list[dict], sample: str | None) -> TrainResult:
    train_losses = [r["loss"] for r in history if "loss" in r]
    eval_losses = [r["eval_loss"] for r in history if "eval_loss" in r]
    return TrainResult(
        output_dir=output_dir,
        history=history,
        final_train_loss=train_losses[-1] if train_losses else None,
        final_eval_loss=eval_losses[-1] if eval_losses else None,
        sample=sample,
    )


def finished_result(output_dir: Path, main_process: bool) -> TrainResult:
    """What `--resume` reports for a run that already finished (and was published, perhaps by `recover`)."""
    log = json.loads((output_dir / "training_log.json").read_text())
    if main_process:
        print(f"hfgpt: nothing to resume: the run finished and {output_dir} holds its model", file=sys.stderr)
    return result_of(output_dir, log["history"], log.get("sample") if main_process else None)


__all__ = ["Prepared", "TrainResult", "build_config", "prepare", "train"]
