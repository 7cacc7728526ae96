"""The comparison's runs: options checked, one model trained (or reused) per strategy, each scored on the
text its run held out, and the files written (see the package docstring)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hfgpt.compare.arguments import Comparison
from hfgpt.errors import ConfigError, OutputDirError


def check_comparison(comparison: Comparison) -> tuple[list[str], list[int], list[str]]:
    """Every option, strategy name and corpus path checked before anything is read or trained:
    `(strategies, lengths, protocols)`."""
    from hfgpt.evaluation import check_eval_options
    from hfgpt.plugins import get_registration
    from hfgpt.training.pretraining import check_corpus, check_strategies

    comparison.check_mode()
    strategies, lengths = comparison.strategy_list(), comparison.length_list()
    protocols, scalings = comparison.protocol_list(), comparison.scaling_list()
    for name in strategies:
        get_registration("position_encoding", name)  # an unknown name lists what is installed
    comparison.check_position_options(strategies)
    if "sliding" in protocols:
        check_eval_options(lengths, comparison.stride(), stride_flag="--sliding-stride")
    if comparison.options.sliding_stride is not None and "sliding" not in protocols:
        raise ConfigError(
            "--sliding-stride is for the sliding protocol: add it to --protocols or leave it out"
        )
    if scalings and "rope" not in strategies:
        raise ConfigError(
            "--rope-scalings stretch the rope model: add rope to --strategies or leave them out"
        )
    output_dir = comparison.output_dir
    if output_dir.exists() and not output_dir.is_dir():
        raise OutputDirError(
            f"--output-dir {output_dir} is a file, not a directory: choose another --output-dir"
        )
    if comparison.options.task is not None:
        from hfgpt.tasks import get_task

        get_task(comparison.options.task).check_length(comparison.max_length)
    for name in strategies:
        check_strategies(comparison.strategy_arguments(name))  # tokenizer options, model shape, window length
    if comparison.options.task is None:
        check_corpus(comparison.strategy_arguments(strategies[0]))
    check_settings(output_dir, comparison.settings())
    return strategies, lengths, protocols


def check_settings(output_dir: Path, settings: dict, record: bool = False) -> None:
    """Refuse to mix models trained with other settings into this comparison; with `record`, write the settings
    (once a model is trained: a comparison that failed before training leaves no settings behind)."""
    path = output_dir / "settings.json"
    if path.is_file():
        saved = json.loads(path.read_text())
        changed = sorted(key for key in set(saved) | set(settings) if saved.get(key) != settings.get(key))
        if changed:
            raise ConfigError(
                f"{output_dir} holds models trained with other settings ({', '.join(changed)} differ): "
                "choose another --output-dir or repeat the earlier settings"
            )
    elif record:
        output_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(settings, indent=1))


@dataclass
class StrategyRun:
    """One strategy's model for one seed: where it is, its training history, and whether this call trained it."""

    strategy: str
    model_dir: Path
    history: list[dict]
    trained: bool
    seconds: float
    seed: int = 0


def reuse(model_dir: Path, strategy: str, seed: int, report: Callable[[str], None]) -> StrategyRun | None:
    """The run of a complete model already in `model_dir` (after recovering what a killed run left), or None."""
    from hfgpt.training.outputs import finished_run, recover

    for message in recover(model_dir):  # publish a run killed while publishing, before deciding
        report(message)
    if not finished_run(model_dir):
        return None
    report(f"hfgpt compare: {strategy}: reusing the trained model in {model_dir}")
    log = json.loads((model_dir / "training_log.json").read_text())
    return StrategyRun(strategy, model_dir, log["history"], False, 0.0, seed)


def train_strategy(
    comparison: Comparison, strategy: str, report: Callable[[str], None], seed: int | None = None
) -> StrategyRun:
    """Train `strategy` (with `seed`, default `--seed`) into its model directory
    (`Comparison.model_dir`) unless a complete model is already there."""
    from hfgpt.training.outputs import staging_dir
    from hfgpt.training.pretraining import train

    targs = comparison.strategy_arguments(strategy, seed)
    model_dir = Path(targs.output_dir)
    if (done := reuse(model_dir, strategy, targs.seed, report)) is not None:
        return done
    targs.resume = (staging_dir(model_dir) / "checkpoints").is_dir()
    if model_dir.exists() and not targs.resume:
        targs.overwrite = True  # an unfinished directory left behind: replace it
    steps = targs.max_steps or f"{targs.epochs} epochs of"
    if targs.show_progress:
        report(f"hfgpt compare: {strategy}: {'resuming' if targs.resume else 'training'} {steps} steps")
    started = time.perf_counter()
    result = train(targs)
    seconds = time.perf_counter() - started
    report(
        f"hfgpt compare: {strategy}: trained in {seconds:.0f} s, validation loss {result.final_eval_loss:.3f}"
    )
    return StrategyRun(strategy, model_dir, result.history, True, seconds, targs.seed)


def held_out(comparison: Comparison):
    """The held-out documents of the comparison's runs: the same split `hfgpt train` made for each (texts, or
    token ids for a fixed vocabulary)."""
    from hfgpt.training.pretraining import fixed_tokenizer, read_corpus, split_corpus

    targs = comparison.strategy_arguments(comparison.strategy_list()[0])  # every seed's split is --seed's
    corpus = read_corpus(targs)
    return split_corpus(targs, corpus, comparison.max_length + 1, fixed_tokenizer(targs))[1]


@dataclass
class Row:
    """One result: a strategy (and seed) at one evaluation length, with one protocol.

    For text: `loss` and `perplexity` of the held-out tokens. For a task (`protocol` "exact-match"): `accuracy`,
    the share of test examples answered exactly, and `loss`/`perplexity` of their answer tokens.
    """

    strategy: str
    eval_length: int
    protocol: str
    loss: float
    perplexity: float
    seed: int = 0
    task: str | None = None
    accuracy: float | None = None


def evaluate_strategy(
    comparison: Comparison,
    run: StrategyRun,
    held_out_source,
    lengths: list[int],
    protocols: list[str],
    scaling: str | None = None,
) -> tuple[list[Row], list[str]]:
    """Rows for every encodable (length, protocol), and one note per length the strategy cannot encode.

    With `scaling` (a rope model only) the rows are the series `rope+<scaling>`: at each length the model is
    loaded stretched by `factor = length / L` (1 at L and below), which changes no weight.
    """
    from hfgpt.evaluation import default_device, eval_stream, evaluate
    from hfgpt.loading import load_causal_lm

    series = run.strategy if scaling is None else f"{run.strategy}+{scaling}"
    L = comparison.max_length
    if scaling is None:
        loads = [(lengths, None)]
    else:
        loads = [([n], {"scaling": scaling, "factor": max(1.0, n / L)}) for n in lengths]
    rows, notes, stream = [], [], None
    column = comparison.train.text_column
    for load_lengths, position_options in loads:
        model, tokenizer = load_causal_lm(run.model_dir, position_options)
        model.to(default_device())
        if stream is None:
            stream = eval_stream(tokenizer, held_out_source, column)
        for protocol in protocols:
            stride = comparison.stride() if protocol == "sliding" else None
            # The first `eval_tokens` tokens: long windows cost length/stride forward passes per token when sliding.
            results = evaluate(
                model,
                tokenizer,
                stream,
                load_lengths,
                stride,
                comparison.train.eval_batch_size,
                max_tokens=comparison.eval_tokens,
            )
            for result in results:
                if not result.encodable:
                    if protocol == protocols[0]:
                        notes.append(f"`{series}` at {result.length}: not evaluated, {result.reason}")
                    continue
                rows.append(Row(series, result.length, protocol, result.loss, result.perplexity, run.seed))
    return rows, notes


__all__ = [
    "Row",
    "StrategyRun",
    "check_comparison",
    "evaluate_strategy",
    "held_out",
    "reuse",
    "train_strategy",
]
