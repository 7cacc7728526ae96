"""`hfgpt train --resume` after the states a kill leaves: training over but not published, checkpoints that
were being written when the run died."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from transformers import TrainerCallback

from hfgpt.cli import main
from hfgpt.training import TrainArguments, train
from hfgpt.training.outputs import staging_dir

RUN = dict(
    preset="tiny",
    tokenizer="regex",
    max_length=32,
    batch_size=2,
    max_steps=8,
    eval_every=4,
    save_every=2,
    show_progress=False,
    max_new_tokens=3,
)
CLI = (
    "train --preset tiny --tokenizer regex --max-length 32 --batch-size 2 --max-steps 8 --eval-every 4 "
    "--save-every 2 --no-progress --max-new-tokens 3 --resume --output-dir"
).split()


def run_args(output_dir: Path, **fields) -> TrainArguments:
    return TrainArguments(output_dir=str(output_dir), **{**RUN, **fields})


class Interrupt(TrainerCallback):
    """Simulates a kill once training reaches `step`, or once it has ended (`step=None`)."""

    def __init__(self, step: int | None):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise KeyboardInterrupt

    def on_train_end(self, args, state, control, **kwargs):
        if self.step is None:  # the final checkpoint is saved, nothing is published yet
            raise KeyboardInterrupt


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("reference") / "run"
    result = train(run_args(out))
    return result, (out / "model.safetensors").read_bytes()


def interrupted(out: Path, step: int | None) -> Path:
    with pytest.raises(KeyboardInterrupt):
        train(run_args(out), callbacks=[Interrupt(step)])
    return staging_dir(out) / "checkpoints"


def test_resume_from_the_final_checkpoint_publishes_and_reports_the_losses(tmp_path, reference, capsys):
    expected, weights = reference
    out = tmp_path / "run"
    assert (interrupted(out, None) / "checkpoint-8").is_dir() and not out.exists()

    assert main([*CLI, str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"final training loss {expected.final_train_loss:.3f}" in printed
    assert f"validation loss {expected.final_eval_loss:.3f}" in printed, printed[-400:]
    assert (out / "model.safetensors").read_bytes() == weights
    assert json.loads((out / "training_log.json").read_text())["history"] == expected.history
    assert not staging_dir(out).exists() and not (out / "checkpoints").exists()

    again = train(run_args(out, resume=True))  # nothing left to resume: the finished run's result
    assert again.final_train_loss == expected.final_train_loss and again.history == expected.history


def damage(checkpoint: Path, name: str) -> None:
    path = checkpoint / name
    if name == "trainer_state.json":
        path.write_text(path.read_text()[:40])
    else:
        path.write_bytes(path.read_bytes()[:40])


@pytest.mark.parametrize("name", ["rng_state.pth", "trainer_state.json", "model.safetensors"])
def test_a_damaged_checkpoint_is_skipped(tmp_path, reference, capsys, name):
    _, weights = reference
    out = tmp_path / "run"
    checkpoints = interrupted(out, 7)
    assert sorted(p.name for p in checkpoints.iterdir()) == ["checkpoint-4", "checkpoint-6"]
    damage(checkpoints / "checkpoint-6", name)

    assert main([*CLI, str(out)]) == 0
    err = capsys.readouterr().err
    assert f"hfgpt: skipped checkpoint {checkpoints / 'checkpoint-6'}: {name}" in err
    assert "Traceback" not in err
    assert (out / "model.safetensors").read_bytes() == weights


def test_no_usable_checkpoint_is_a_clear_error(tmp_path, capsys):
    out = tmp_path / "run"
    checkpoints = interrupted(out, 5)
    shutil.rmtree(checkpoints / "checkpoint-2")
    damage(checkpoints / "checkpoint-4", "rng_state.pth")

    assert main([*CLI, str(out)]) == 2
    err = capsys.readouterr().err
    assert f"no usable checkpoint to resume from in {checkpoints}" in err
    assert "run without --resume to start afresh" in err and "Traceback" not in err
