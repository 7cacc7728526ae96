"""What `hfgpt train` prints and reports: interval lines for people, speed over training time alone, the final
loss said for what it is, the time breakdown, validation without logits, no host read inside a step."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
import torch
from transformers import TrainerCallback, TrainerControl, TrainerState

from hfgpt.cli import main
from hfgpt.training import TrainArguments, train
from hfgpt.training.progress import ProgressPrinter, RunClock, Throughput

TINY = dict(
    preset="tiny",
    tokenizer="regex",
    max_length=32,
    batch_size=2,
    show_progress=False,
    max_new_tokens=3,
    drop_rate=0.0,
)
LINE = re.compile(
    r"^step +(\d+)/(\d+): loss (\d+\.\d{3}), lr \S+, grad norm \S+, ([\d,]+) ms/step, ([\d,]+) tokens/s"
)
VALIDATION = re.compile(
    r"^step +(\d+)/(\d+): validation loss (\d+\.\d{3}) \(16 windows, 512 tokens, [\d.]+ s\)$"
)


def tiny_args(output_dir: Path, **fields) -> TrainArguments:
    return TrainArguments(output_dir=str(output_dir), **{**TINY, **fields})


class FakeTime:
    def __init__(self):
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_interval_speed_leaves_out_validation_and_the_steady_state_leaves_out_the_warm_up():
    """Hand-timed: step 1 takes 2 s (compilation), every other step 0.1 s, a validation after step 4 takes 1 s.
    Interval 1-4: 2.3 s for 4 steps of 100 tokens; interval 5-8: 0.4 s (the validation left out); steady state
    after 2 warm-up steps: steps 3-8, 0.6 s."""
    now = FakeTime()
    clock, lines = RunClock(now), []
    printer = ProgressPrinter(clock, Throughput(tokens_per_step=100), warmup_steps=2, write=lines.append)
    state, control = TrainerState(max_steps=8), TrainerControl()
    printer.on_train_begin(None, state, control)
    for step in range(1, 9):
        now.t += 2.0 if step == 1 else 0.1
        state.global_step = step
        control.should_log = False
        printer.on_step_end(None, state, control)
        assert control.should_log == (step == 8)  # the last step always closes an interval
        if step in (4, 8):
            printer.on_log(None, state, control, logs={"loss": 5.0 - step / 10, "learning_rate": 1e-3})
        if step == 4:
            with clock.phase("validate"):
                now.t += 1.0
            printer.on_log(None, state, control, logs={"eval_loss": 4.8, "eval_runtime": 1.0})
    printer.on_train_end(None, state, control)

    assert lines == [
        "step 4/8: loss 4.600, lr 1.0e-03, 575 ms/step, 174 tokens/s (first steps: warming up)",
        "step 4/8: validation loss 4.800 (1.0 s)",
        "step 8/8: loss 4.200, lr 1.0e-03, 100 ms/step, 1,000 tokens/s",
    ]
    measured = printer.measured()
    assert measured["warmup_steps"] == 2 and measured["warmup_seconds"] == pytest.approx(2.1)
    assert measured["steady_steps"] == 6 and measured["steady_seconds"] == pytest.approx(0.6)
    assert clock.breakdown()["validate"] == pytest.approx(1.0)


def test_mfu_shows_on_a_known_peak():
    # 1,000 tokens/s at 1e9 FLOPs per token on a 1e13 FLOPS device: 10%
    assert Throughput(100, 1e9, 1e13).describe(10, 1.0) == "100 ms/step, 1,000 tokens/s, MFU 10.0%"
    assert Throughput(100).describe(10, 1.0) == "100 ms/step, 1,000 tokens/s"


class SlowValidation(TrainerCallback):
    """Every validation takes `seconds` more (as a large held-out set would)."""

    def __init__(self, seconds: float):
        self.seconds, self.calls = seconds, 0

    def on_evaluate(self, args, state, control, **kwargs):
        self.calls += 1
        time.sleep(self.seconds)


def test_training_speed_is_measured_on_training_time_alone(tmp_path, capsys):
    slow = SlowValidation(1.5)
    result = train(tiny_args(tmp_path / "run", max_steps=10, eval_every=2), callbacks=[slow])
    printed = capsys.readouterr().out.splitlines()

    training = [LINE.match(line) for line in printed if ": loss " in line]
    assert all(training), printed
    assert [int(m[1]) for m in training] == [1, 2, 4, 6, 8, 10] and {m[2] for m in training} == {"10"}
    validations = [VALIDATION.match(line) for line in printed if "validation loss" in line]
    assert all(validations) and len(validations) == slow.calls == 5, printed
    assert not any(line.startswith("{") for line in printed)  # no raw Trainer dictionaries
    # each interval after a validation would show >= 750 ms/step if its 1.5 s counted
    assert all(int(m[4].replace(",", "")) < 700 for m in training[2:]), printed
    # the history holds the same losses the lines show
    logged = [r["loss"] for r in result.history if "loss" in r]
    assert [f"{loss:.3f}" for loss in logged] == [m[3] for m in training]

    assert result.times["validate"] >= 5 * 1.5
    assert result.warmup_steps == 3 and result.steady_steps == 7
    assert 0 < result.steady_seconds < 3.0  # 7 tiny steps; the 7.5 s of validation is not in it
    assert result.tokens_per_second == pytest.approx(7 * 2 * 32 / result.steady_seconds)
    parts = sum(result.times[name] for name in ("prepare", "warmup", "train", "validate", "save", "other"))
    assert parts == pytest.approx(result.times["total"], rel=1e-6)


def test_the_final_training_loss_is_the_last_intervals_mean_and_says_so(tmp_path):
    """Logged every 4 steps, a 10-step run closes its last interval at step 10: the final loss is the mean of
    steps 9 and 10, which a run of the same seed logging every step shows one by one. Loading batches in a
    worker process changes neither the data order nor the losses."""
    every_four = train(tiny_args(tmp_path / "a", max_steps=10, eval_every=4, dataloader_workers=1))
    every_step = train(tiny_args(tmp_path / "b", max_steps=10, eval_every=1))
    per_step = {r["step"]: r["loss"] for r in every_step.history if "loss" in r}
    assert every_four.final_train_loss_steps == (9, 10)
    assert every_four.final_train_loss == pytest.approx((per_step[9] + per_step[10]) / 2, rel=1e-6)
    assert [r["step"] for r in every_four.history if "loss" in r] == [1, 4, 8, 10]
    final = json.loads((tmp_path / "a" / "training_log.json").read_text())["final"]
    assert final["train_loss"] == every_four.final_train_loss and final["train_loss_steps"] == [9, 10]
    assert final["eval_loss"] == every_four.final_eval_loss
    assert every_step.final_train_loss_steps == (10, 10) and every_step.final_train_loss == per_step[10]


def test_cli_prints_lines_the_choice_of_precision_and_the_account(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(
        ["train", "--output-dir", str(out), "--preset", "tiny", "--tokenizer", "regex", "--max-length", "32",
         "--max-steps", "6", "--eval-every", "3", "--no-progress", "--max-new-tokens", "3"]
    )  # fmt: skip
    assert code == 0
    captured = capsys.readouterr()
    assert "hfgpt: mixed precision: none (auto: training on the CPU)" in captured.err
    lines = captured.out.splitlines()
    assert sum(bool(LINE.match(line)) for line in lines) == 3  # steps 1, 3, 6
    assert (
        "final training loss" in captured.out
        and "(mean over steps 4-6, the last logging interval)" in captured.out
    )
    time_line = next(line for line in lines if line.startswith("time: "))
    for phase in (
        "preparing data",
        "warming up (first 3 steps)",
        "training (3 steps)",
        "validating",
        "saving",
    ):
        assert phase in time_line
    assert any(line.startswith("steady state: ") and "tokens/s" in line for line in lines)


def test_validation_computes_no_logits(tmp_path):
    """The pretraining Trainer's validation never runs the LM head's module (no (tokens, vocabulary) logits)
    and gives the mean cross-entropy of the held-out windows, computed here from the full logits."""
    from hfgpt.training.pretraining import build_trainer, prepare, pretraining_arguments

    args = tiny_args(tmp_path / "run", eval_batch_size=8)
    data = prepare(args)
    trainer = build_trainer(args, pretraining_arguments(args, tmp_path / "staging"), data, None)
    calls = []
    trainer.model.lm_head.register_forward_hook(lambda *a: calls.append(1))
    metrics = trainer.evaluate()
    assert not calls
    assert len(data.val_set) % 8 == 0  # whole batches: the batch mean is the window mean
    model = trainer.model.eval()
    losses = []
    with torch.no_grad():
        for row in data.val_set:
            ids, targets = (
                torch.as_tensor(row["input_ids"]).long(),
                torch.as_tensor(row["shift_labels"]).long(),
            )
            ids = ids.unsqueeze(0)
            losses.append(torch.nn.functional.cross_entropy(model(input_ids=ids).logits[0], targets))
    assert calls  # the reference did use the head
    assert metrics["eval_loss"] == pytest.approx(torch.stack(losses).mean().item(), rel=1e-5)


READS = ("item", "__bool__", "__float__", "__int__", "__index__", "tolist", "numpy")
# The one read left, outside hfgpt's training code: the model body passes its default position ids to
# transformers' mask builder, which looks for packed documents in them (`(mask[:, -1] == 0).all()`) unless
# compiling. Passing None there when the positions were not given would remove it.
MASK_CHECK = ("masking_utils.py", "find_packed_sequence_indices")


class HostReads(TrainerCallback):
    """Records where each read of a tensor's value on the host is made between a step's begin and end (its
    forward, backward, clipping and optimizer step), from the second step on."""

    def __init__(self):
        self.active, self.reads = False, []

    def on_step_begin(self, args, state, control, **kwargs):
        self.active = state.global_step >= 1

    def on_step_end(self, args, state, control, **kwargs):
        self.active = False


@pytest.mark.parametrize("nan_filter", [False, True])
def test_no_host_read_inside_a_training_step(tmp_path, monkeypatch, nan_filter):
    """On a GPU each such read waits for the device. With Trainer's NaN filter (on by default) every step reads
    its loss: the spy sees it, so it would see any other."""
    import sys

    from hfgpt.training import pretraining

    spy = HostReads()
    for name in READS:
        original = getattr(torch.Tensor, name)

        def wrapped(self, *args, _original=original, **kwargs):
            if spy.active:
                caller = sys._getframe(1)
                spy.reads.append((Path(caller.f_code.co_filename).name, caller.f_code.co_name))
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, wrapped)
    if nan_filter:
        make = pretraining.pretraining_arguments

        def with_filter(args, staging):
            targs = make(args, staging)
            targs.logging_nan_inf_filter = True
            return targs

        monkeypatch.setattr(pretraining, "pretraining_arguments", with_filter)
    train(
        tiny_args(tmp_path / "run", max_steps=5, eval_every=2, gradient_accumulation_steps=2), callbacks=[spy]
    )
    others = [read for read in spy.reads if read != MASK_CHECK]
    if nan_filter:
        assert others.count(("trainer.py", "_run_epoch")) >= 4 * 2  # steps 2-5, two micro-batches each
    else:
        assert others == []
        assert spy.reads.count(MASK_CHECK) == 4 * 2  # one per forward, none from the training code
