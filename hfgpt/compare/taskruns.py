"""`hfgpt compare --task`: one model per strategy and seed trained on a synthetic task, scored by exact match.

Training reuses hfgpt's machinery: the model config of `hfgpt.training.pretraining.build_config` (the preset,
the model options, the strategy), transformers' Trainer through `trainer_arguments` (the same device rule,
cosine schedule and warm-up as pretraining), and the run lifecycle of `RunDirectory` (a model directory is
published only once complete; a complete one is reused). Only the data differs: `hfgpt.tasks` examples of up
to L tokens, labelled on the answer, padded per batch.

Random streams, each from its own seed so that they never share examples by construction:

* training examples: `[seed, 0]`, a fresh example for every row of every step (`max_steps x batch_size`), so
  a seed changes the data as well as the initialisation and order;
* validation examples (the loss curve): `[--seed, 1]`, the same for every strategy and seed;
* test examples: `[--seed, 2, length]`, the same for every strategy and seed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from hfgpt.compare.arguments import Comparison
from hfgpt.compare.runs import Row, StrategyRun, reuse

VALIDATION_EXAMPLES = 512
TRAIN_STREAM, VALIDATION_STREAM, TEST_STREAM = 0, 1, 2


def task_attention_text(comparison: Comparison) -> str:
    """A test example of the comparison's task, short enough to read on attention.png."""
    import numpy as np

    from hfgpt.tasks import example_text, get_task

    task = get_task(comparison.options.task)
    length = max(task.min_length, min(comparison.max_length, 24))
    return example_text(task.example(np.random.default_rng([comparison.train.seed, TEST_STREAM]), length))


def train_task_strategy(
    comparison: Comparison, strategy: str, report: Callable[[str], None], seed: int | None = None
) -> StrategyRun:
    """Train `strategy` (with `seed`, default `--seed`) on the comparison's task into its model directory,
    unless a complete model is already there."""
    from datasets import Dataset
    from transformers import Trainer, set_seed

    from hfgpt.modeling_hfgpt import HFGPTForCausalLM
    from hfgpt.quiet import quiet
    from hfgpt.tasks import get_task, pad_collator, task_tokenizer, training_rows
    from hfgpt.training.arguments import resolve_mixed_precision, trainer_arguments
    from hfgpt.training.outputs import RunDirectory, run_history
    from hfgpt.training.pretraining import build_config, validate_at_last_step

    targs = comparison.strategy_arguments(strategy, seed)
    model_dir = Path(targs.output_dir)
    if (done := reuse(model_dir, strategy, targs.seed, report)) is not None:
        return done
    task = get_task(comparison.options.task)
    L = comparison.max_length
    if targs.show_progress:
        report(
            f"hfgpt compare: {strategy}: training {targs.max_steps} steps of {targs.batch_size} {task.name} "
            "examples"
        )
    started = time.perf_counter()
    with quiet(not targs.show_progress):
        tokenizer = task_tokenizer(task)
        config = build_config(targs, tokenizer=tokenizer)
        train_set = Dataset.from_dict(
            training_rows(task, tokenizer, targs.max_steps * targs.batch_size, L, [targs.seed, TRAIN_STREAM])
        )
        val_set = Dataset.from_dict(
            training_rows(task, tokenizer, VALIDATION_EXAMPLES, L, [comparison.train.seed, VALIDATION_STREAM])
        )
        run = RunDirectory(model_dir, overwrite=True).open()  # short runs: an interrupted one starts afresh
        every = targs.eval_every or max(20, targs.max_steps // 50)
        precision, _ = resolve_mixed_precision(targs.mixed_precision, targs.cpu)  # auto: as `hfgpt train`
        args = trainer_arguments(
            str(run.checkpoints),
            label_names=["labels"],
            epochs=1.0,
            max_steps=targs.max_steps,
            batch_size=targs.batch_size,
            learning_rate=targs.learning_rate,
            weight_decay=targs.weight_decay,
            seed=targs.seed,
            cpu=targs.cpu,
            show_progress=targs.show_progress,
            lr_scheduler_type="cosine",
            warmup_steps=min(100, targs.max_steps // 10),
            eval_strategy="steps",
            eval_steps=every,
            logging_steps=every,
            logging_first_step=True,
            per_device_eval_batch_size=targs.eval_batch_size,
            dataloader_drop_last=False,
            # random batches that mix lengths: batches of one length each would pad less, but train unstably
            bf16=precision == "bf16",
            fp16=precision == "fp16",
            torch_compile=targs.compile,
        )
        set_seed(targs.seed)
        trainer = Trainer(
            model=HFGPTForCausalLM(config),
            args=args,
            train_dataset=train_set,
            eval_dataset=val_set,
            processing_class=tokenizer,
            data_collator=pad_collator(tokenizer.eos_token_id),
        )
        trainer.train()
        validate_at_last_step(trainer)
        history = run_history(trainer.state.log_history)
        log = {"args": asdict(targs), "task": task.name, "history": history}
        run.save(trainer, tokenizer, log)
        run.publish()
        run.close()
    seconds = time.perf_counter() - started
    final = next((r["eval_loss"] for r in reversed(history) if "eval_loss" in r), math.nan)
    report(f"hfgpt compare: {strategy}: trained in {seconds:.0f} s, validation loss {final:.3f}")
    return StrategyRun(strategy, model_dir, history, True, seconds, targs.seed)


def evaluate_task_strategy(
    comparison: Comparison, run: StrategyRun, lengths: list[int]
) -> tuple[list[Row], list[str]]:
    """Exact match at every length the strategy can encode, and one note per length it cannot."""
    from hfgpt.evaluation import default_device
    from hfgpt.loading import load_causal_lm
    from hfgpt.position_encoding import max_positions
    from hfgpt.tasks import get_task, score_task

    task = get_task(comparison.options.task)
    model, tokenizer = load_causal_lm(run.model_dir)
    model.to(default_device())
    scores = score_task(
        model,
        task,
        tokenizer,
        lengths,
        comparison.options.task_examples,
        [comparison.train.seed, TEST_STREAM],
        comparison.train.eval_batch_size,
    )
    rows, notes = [], []
    for length, score in zip(lengths, scores):
        if score is None:
            limit = max_positions(model.config)
            notes.append(
                f"`{run.strategy}` at {length}: not evaluated, it cannot encode more than {limit} positions"
            )
            continue
        perplexity = math.exp(score.loss) if score.loss < 700 else math.inf
        rows.append(
            Row(
                run.strategy,
                length,
                "exact-match",
                score.loss,
                perplexity,
                run.seed,
                task.name,
                score.accuracy,
            )
        )
    return rows, notes


__all__ = ["evaluate_task_strategy", "task_attention_text", "train_task_strategy"]
