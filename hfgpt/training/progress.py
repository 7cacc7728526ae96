"""Honest progress: what a training run prints while it trains, and the account it gives at the end.

One line per logging interval, for people, in place of Trainer's raw dictionaries:

    step  40/200: loss 5.912, lr 1.9e-03, 84 ms/step, 12,190 tokens/s
    step  40/200: validation loss 6.104 (64 windows, 16,384 tokens, 0.9 s)

(with `, MFU 31.2%` on a GPU whose peak is known). Speed is measured over the training steps of that interval
only: the time spent validating and saving checkpoints is taken out, and on a GPU the device is synchronised at
each line (once per interval, never inside a step) so that queued work is counted where it ran. The interval
that holds the first steps, where kernels are chosen and `torch.compile` compiles, says so.

`RunClock` splits a run's wall time into phases (preparing data, warming up, training, validating, saving);
`ProgressPrinter` is the `TrainerCallback` that prints the lines, keeps tqdm's bar when bars are on, forces a log
at the last step (so the final training loss is the mean of a last interval that really ends there) and counts
the steady state: the training steps after the first `warmup_steps`, over training time alone.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from transformers import TrainerCallback

# Steps of every run counted as warm-up, not steady state: the first step compiles (`--compile`) and chooses
# kernels, the next ones may recompile or still fill caches.
WARMUP_STEPS = 3
# Phases a run's time is reported in, in order; "other" is what is left (building the model, the sample).
PHASES = ("prepare", "warmup", "train", "validate", "save")
PHASE_NAMES = {
    "prepare": "preparing data",
    "warmup": "warming up",
    "train": "training",
    "validate": "validating",
    "save": "saving",
    "other": "other",
}


def synchronize() -> None:
    """Wait for the GPU's queued work, so that a clock read after it counts that work (no-op without CUDA)."""
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


class RunClock:
    """Wall time of a run by phase.

    `phase(name)` times a block into `name`; `excluded()` is the time spent so far in the phases that interrupt
    training (validating, saving), which the training intervals take out of their own time. The warm-up and
    steady training time are recorded by `ProgressPrinter`.

    Args:
        now: the clock (`time.perf_counter`); tests pass a fake one.
    """

    INTERRUPTIONS = ("validate", "save")

    def __init__(self, now: Callable[[], float] = time.perf_counter):
        self.now = now
        self.started = now()
        self.spent: dict[str, float] = defaultdict(float)
        self._open: list[str] = []

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Count the block's wall time into `name` (a phase inside another one counts for the outer one only)."""
        if self._open:  # e.g. the validation Trainer runs inside a checkpoint save: counted once
            yield
            return
        self._open.append(name)
        start = self.now()
        try:
            yield
        finally:
            self.spent[name] += self.now() - start
            self._open.pop()

    def excluded(self) -> float:
        return sum(self.spent[name] for name in self.INTERRUPTIONS)

    def add(self, name: str, seconds: float) -> None:
        self.spent[name] += seconds

    def breakdown(self) -> dict[str, float]:
        """Seconds by phase (`PHASES`, then "other"), and "total", from the clock's start to now."""
        total = self.now() - self.started
        times = {name: self.spent.get(name, 0.0) for name in PHASES}
        times["other"] = max(0.0, total - sum(times.values()))
        times["total"] = total
        return times


@dataclass
class Throughput:
    """What turns steps and seconds into tokens/s and MFU.

    Args:
        tokens_per_step: tokens one optimizer step trains on, over every process and micro-batch.
        flops_per_token: the model's training FLOPs per token (`hfgpt.training.mfu`).
        peak_flops: the dense bf16 peak of all the run's devices together; None on the CPU or an unknown GPU.
    """

    tokens_per_step: int
    flops_per_token: float = 0.0
    peak_flops: float | None = None

    def rates(self, steps: int, seconds: float) -> dict[str, float]:
        """`ms_per_step`, `tokens_per_second` and (on a known GPU) `mfu` of `steps` steps taking `seconds`."""
        if steps <= 0 or seconds <= 0:
            return {}
        tokens_per_second = steps * self.tokens_per_step / seconds
        rates = {"ms_per_step": 1000 * seconds / steps, "tokens_per_second": tokens_per_second}
        if self.peak_flops and self.flops_per_token:
            rates["mfu"] = tokens_per_second * self.flops_per_token / self.peak_flops
        return rates

    def describe(self, steps: int, seconds: float) -> str:
        """`84 ms/step, 12,190 tokens/s[, MFU 31.2%]` for `steps` steps taking `seconds`."""
        rates = self.rates(steps, seconds)
        if not rates:
            return "no timed steps"
        text = f"{per_step(rates['ms_per_step'] / 1000)}, {rates['tokens_per_second']:,.0f} tokens/s"
        return text + (f", MFU {rates['mfu']:.1%}" if "mfu" in rates else "")


def per_step(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms/step" if seconds < 10 else f"{seconds:,.1f} s/step"


def duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


class ProgressPrinter(TrainerCallback):
    """Prints one line per logging interval and per validation, and measures the steady state.

    Replaces Trainer's `PrinterCallback`/`ProgressCallback` (`install`); with `bars` it draws tqdm's bar of
    the steps (and of validation batches) and writes its lines above it.

    Args:
        clock (`RunClock`): the run's clock; validation and saving time recorded there is not training time.
        throughput (`Throughput`): tokens per step, FLOPs per token and the devices' peak.
        bars (`bool`): draw progress bars.
        eval_windows (`int`): windows per validation, for its line.
        window_tokens (`int`): tokens per window.
        warmup_steps (`int`): first steps of this call counted as warm-up (`WARMUP_STEPS`).
        write: where lines go when no bar is drawn (`print`).
    """

    def __init__(
        self,
        clock: RunClock,
        throughput: Throughput,
        *,
        bars: bool = False,
        eval_windows: int = 0,
        window_tokens: int = 0,
        warmup_steps: int = WARMUP_STEPS,
        write: Callable[[str], None] | None = None,
    ):
        self.clock, self.throughput, self.bars = clock, throughput, bars
        self.eval_windows, self.window_tokens = eval_windows, window_tokens
        self.warmup_steps = warmup_steps
        self._write = write or (lambda line: print(line, flush=True))
        self.training_bar = self.prediction_bar = None
        self.total = self.first_step = self.step = 0
        self._mark = self._mark_excluded = 0.0
        self._mark_step = 0
        self.begun = self.warmup_end = self.ended = None  # (time, excluded so far, step) at each point

    @classmethod
    def install(cls, trainer, *args, **kwargs) -> ProgressPrinter:
        """Replace `trainer`'s printing callbacks with a `ProgressPrinter(*args, **kwargs)`; return it."""
        from transformers.trainer_callback import PrinterCallback, ProgressCallback

        trainer.remove_callback(PrinterCallback)
        trainer.remove_callback(ProgressCallback)
        printer = cls(*args, **kwargs)
        trainer.add_callback(printer)
        return printer

    # --- output -------------------------------------------------------------------------------------------
    def write(self, line: str) -> None:
        if self.training_bar is not None:
            self.training_bar.write(line)
        else:
            self._write(line)

    def _prefix(self, step: int) -> str:
        width = len(str(self.total)) if self.total else 0
        return f"step {step:>{width}}/{self.total}" if self.total else f"step {step}"

    def _point(self) -> tuple[float, float, int]:
        synchronize()
        return self.clock.now(), self.clock.excluded(), self.step

    # --- Trainer events -----------------------------------------------------------------------------------
    def on_train_begin(self, args, state, control, **kwargs):
        self.total, self.first_step = state.max_steps, state.global_step
        self.step = state.global_step
        self.begun = self._point()
        self._mark, self._mark_excluded, self._mark_step = self.begun
        self.warmup_end = self.ended = None
        if self.warmup_steps <= 0:
            self.warmup_end = self.begun
        if self.bars and state.is_world_process_zero:
            from tqdm.auto import tqdm

            self.training_bar = tqdm(total=state.max_steps, initial=state.global_step, dynamic_ncols=True)

    def on_step_end(self, args, state, control, **kwargs):
        self.step = state.global_step
        if self.training_bar is not None:
            self.training_bar.update(state.global_step - self.training_bar.n)
        if self.warmup_end is None and self.step - self.first_step >= self.warmup_steps:
            self.warmup_end = self._point()  # the one synchronisation outside a log line
        if state.global_step >= state.max_steps:
            control.should_log = True  # the last interval ends at the last step, even between two logs
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        if "loss" in logs:
            now, excluded, step = self._point()
            steps = step - self._mark_step
            seconds = (now - self._mark) - (excluded - self._mark_excluded)
            warm = self._mark_step - self.first_step < self.warmup_steps
            self._mark, self._mark_excluded, self._mark_step = now, excluded, step
            if state.is_world_process_zero:
                self.write(self.training_line(step, logs, steps, seconds, warm))
            # the interval's speed, for the reporting callbacks after this one (TensorBoard, W&B)
            logs.update(self.throughput.rates(steps, seconds))
        elif "eval_loss" in logs and state.is_world_process_zero:
            self.write(self.validation_line(state.global_step, logs))

    def on_prediction_step(self, args, state, control, eval_dataloader=None, **kwargs):
        if not (self.bars and state.is_world_process_zero):
            return
        if self.prediction_bar is None:
            from tqdm.auto import tqdm

            total = len(eval_dataloader) if eval_dataloader is not None else None
            self.prediction_bar = tqdm(total=total, leave=False, dynamic_ncols=True, desc="validating")
        self.prediction_bar.update(1)

    def on_evaluate(self, args, state, control, **kwargs):
        if self.prediction_bar is not None:
            self.prediction_bar.close()
            self.prediction_bar = None

    def on_train_end(self, args, state, control, **kwargs):
        self.step = state.global_step
        self.ended = self._point()
        if self.warmup_end is None:  # fewer steps than the warm-up: no steady state
            self.warmup_end = self.ended
        if self.training_bar is not None:
            self.training_bar.close()
            self.training_bar = None

    # --- lines --------------------------------------------------------------------------------------------
    def training_line(self, step: int, logs: dict[str, Any], steps: int, seconds: float, warm: bool) -> str:
        parts = [f"loss {logs['loss']:.3f}"]
        if logs.get("learning_rate") is not None:
            parts.append(f"lr {logs['learning_rate']:.1e}")
        if logs.get("grad_norm") is not None:
            parts.append(f"grad norm {float(logs['grad_norm']):.2f}")
        parts.append(self.throughput.describe(steps, seconds))
        line = f"{self._prefix(step)}: {', '.join(parts)}"
        return line + " (first steps: warming up)" if warm else line

    def validation_line(self, step: int, logs: dict[str, Any]) -> str:
        details = []
        if self.eval_windows:
            details.append(f"{self.eval_windows:,} windows")
            if self.window_tokens:
                details.append(f"{self.eval_windows * self.window_tokens:,} tokens")
        if logs.get("eval_runtime") is not None:
            details.append(duration(logs["eval_runtime"]))
        suffix = f" ({', '.join(details)})" if details else ""
        return f"{self._prefix(step)}: validation loss {logs['eval_loss']:.3f}{suffix}"

    # --- the account --------------------------------------------------------------------------------------
    def measured(self) -> dict[str, float]:
        """Steps and seconds of this call's training: warm-up, and steady state after it (validation and saving
        taken out of both). Call after training."""
        if self.begun is None or self.ended is None or self.warmup_end is None:
            return {"warmup_steps": 0, "warmup_seconds": 0.0, "steady_steps": 0, "steady_seconds": 0.0}

        def span(start, end) -> tuple[int, float]:
            return end[2] - start[2], (end[0] - start[0]) - (end[1] - start[1])

        warmup_steps, warmup_seconds = span(self.begun, self.warmup_end)
        steady_steps, steady_seconds = span(self.warmup_end, self.ended)
        return {
            "warmup_steps": warmup_steps,
            "warmup_seconds": warmup_seconds,
            "steady_steps": steady_steps,
            "steady_seconds": steady_seconds,
        }


def summary_lines(result) -> list[str]:
    """The account of a finished run (`TrainResult`) for people: final losses, where the time went, and the
    steady-state speed."""
    lines = []
    losses = []
    if result.final_train_loss is not None:
        first, last = result.final_train_loss_steps or (None, None)
        over = (
            f"mean of step {last}"
            if first == last
            else f"mean over steps {first}-{last}, the last logging interval"
        )
        losses.append(f"final training loss {result.final_train_loss:.3f} ({over})")
    if result.final_eval_loss is not None:
        losses.append(f"validation loss {result.final_eval_loss:.3f}")
    if losses:
        lines.append(", ".join(losses))
    times = result.times or {}
    if times:
        parts = []
        for name in (*PHASES, "other"):
            seconds = times.get(name, 0.0)
            if name == "warmup" and result.warmup_steps:
                plural = "s" if result.warmup_steps > 1 else ""
                parts.append(f"{duration(seconds)} warming up (first {result.warmup_steps} step{plural})")
            elif name == "train":
                parts.append(f"{duration(seconds)} training ({result.steady_steps} steps)")
            elif seconds >= 0.05 or name in ("prepare", "validate", "save"):
                parts.append(f"{duration(seconds)} {PHASE_NAMES[name]}")
        lines.append(f"time: {', '.join(parts)}; {duration(times.get('total', 0.0))} in all")
    if result.steady_steps and result.steady_seconds:
        speed = Throughput(result.tokens_per_step, result.flops_per_token, result.peak_flops).describe(
            result.steady_steps, result.steady_seconds
        )
        where = ""
        if result.device is not None:
            where = f" on {result.device}"
            if not result.peak_flops:
                where += " (MFU: its bf16 peak is not in hfgpt.training.mfu.PEAK_BF16_TFLOPS)"
        lines.append(
            f"steady state: {speed}{where}, over the {result.steady_steps} training steps after the warm-up "
            f"({result.tokens_trained:,} tokens trained in all)"
        )
    elif result.tokens_trained:
        lines.append(f"trained on {result.tokens_trained:,} tokens; too few steps for a steady-state speed")
    return lines


__all__ = [
    "PHASES",
    "WARMUP_STEPS",
    "ProgressPrinter",
    "RunClock",
    "Throughput",
    "summary_lines",
    "synchronize",
]
