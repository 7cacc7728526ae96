"""Publishing survives a kill at any instant: fault injection on every filesystem step of `publish`, and
SIGKILLs at random moments of a real (tiny) training run."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hfgpt.training import outputs
from hfgpt.training.outputs import MARKER, mark_complete, previous_dir, publish, recover, staging_dir

OLD = {"config.json": b'{"model": "old"}', "model.safetensors": b"old weights " * 64}
NEW = {"config.json": b'{"model": "new"}', "model.safetensors": b"new weights " * 64, "vocab.json": b"{}"}

# Runs `publish` with each filesystem step it takes (exchange, replace, rmtree, unlink: the module-level
# names of hfgpt.training.outputs) counted, and SIGKILLs itself before, after or midway through step N
# (midway: a tree removal that removed one file). With N = 0 it runs through and prints the steps' names.
PUBLISH_AND_DIE = r"""
import json, os, signal, sys
from pathlib import Path
from hfgpt.training import outputs

staging, out, path, kill_at, when = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5]
names = []

def die():
    os.kill(os.getpid(), signal.SIGKILL)

def counted(name, function):
    def step(*args):
        names.append(name)
        if len(names) == kill_at and when == "before":
            die()
        if len(names) == kill_at and when == "during":
            next(p for p in sorted(Path(args[0]).rglob("*")) if p.is_file()).unlink()
            die()
        result = function(*args)
        if len(names) == kill_at:
            die()
        return result
    return step

if path == "fallback":
    outputs.exchange = lambda first, second: False  # as on a system without renameat2
for name in ("exchange", "replace", "rmtree", "unlink"):
    setattr(outputs, name, counted(name, getattr(outputs, name)))
outputs.publish(staging, out)
print(json.dumps(names))
"""


def write_model(path: Path, files: dict[str, bytes]) -> None:
    path.mkdir(parents=True)
    for name, data in files.items():
        (path / name).write_bytes(data)


def files_in(path: Path) -> dict[str, bytes] | None:
    if not path.exists():
        return None
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def stage(root: Path, with_old: bool) -> tuple[Path, Path]:
    """`root/out` with the old model (or none) and `root/out.partial` with a complete, marked new model
    that still holds its checkpoints, as a run leaves it right before publishing."""
    out = root / "out"
    if with_old:
        write_model(out, OLD)
    staging = staging_dir(out)
    write_model(staging, NEW)
    write_model(staging / "checkpoints" / "checkpoint-4", {"trainer_state.json": b"{}", **NEW})
    mark_complete(staging)
    return staging, out


def run_publish(
    staging: Path, out: Path, path: str, kill_at: int = 0, when: str = ""
) -> subprocess.CompletedProcess:
    command = [sys.executable, "-c", PUBLISH_AND_DIE, str(staging), str(out), path, str(kill_at), when]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def kills(steps: list[str]) -> list[tuple[int, str]]:
    """Every place to kill: before and after each step, and midway through each tree removal."""
    places = [(n, when) for n in range(1, len(steps) + 1) for when in ("before", "after")]
    return places + [(n, "during") for n, name in enumerate(steps, 1) if name == "rmtree"]


def without_marker(files: dict[str, bytes] | None) -> dict[str, bytes] | None:
    return None if files is None else {k: v for k, v in files.items() if k != MARKER}


@pytest.mark.parametrize(("path", "with_old"), [("exchange", True), ("fallback", True), ("exchange", False)])
def test_a_kill_at_any_step_of_publish_is_recovered(tmp_path, path, with_old):
    staging, out = stage(tmp_path / "dry", with_old)
    finished = run_publish(staging, out, path)
    assert finished.returncode == 0, finished.stderr
    steps = json.loads(finished.stdout)
    assert files_in(out) == NEW and not staging.exists() and not previous_dir(out).exists()
    if with_old:
        assert ("exchange" in steps) and (("replace" in steps) == (path == "fallback"))

    for n, when in kills(steps):
        staging, out = stage(tmp_path / f"{n}-{when}", with_old)
        killed = run_publish(staging, out, path, n, when)
        assert killed.returncode == -signal.SIGKILL, (n, when, killed.stderr)
        left = without_marker(files_in(out))
        if path == "exchange":  # at every instant <out> holds one complete model
            assert left in ((OLD, NEW) if with_old else (None, NEW)), (n, when)
        else:  # between the two renames the old model is in .previous
            assert left in (OLD, NEW) or files_in(previous_dir(out)) == OLD, (n, when)

        messages = recover(out)
        assert files_in(out) == NEW, (n, when, messages)
        assert not staging.exists() and not previous_dir(out).exists(), (n, when)
        assert all(m.startswith(f"hfgpt: recovered {out}: ") and "\n" not in m for m in messages)
        assert recover(out) == []  # nothing is left to do


def test_an_interrupted_run_is_left_for_resume(tmp_path):
    out = tmp_path / "out"
    write_model(out, OLD)
    write_model(staging_dir(out) / "checkpoints" / "checkpoint-4", {"trainer_state.json": b"{}", **NEW})
    assert recover(out) == []
    assert files_in(out) == OLD and (staging_dir(out) / "checkpoints" / "checkpoint-4").is_dir()


def test_a_model_moved_aside_by_a_killed_publish_is_restored(tmp_path):
    out = tmp_path / "out"
    write_model(previous_dir(out), OLD)  # killed between the fallback's renames, new model not marked
    write_model(staging_dir(out), NEW)
    messages = recover(out)
    assert files_in(out) == OLD and not previous_dir(out).exists()
    assert messages == [
        f"hfgpt: recovered {out}: restored the model a killed run had moved to {out}.previous"
    ]


def test_a_stray_previous_beside_a_complete_model_is_removed(tmp_path):
    out = tmp_path / "out"
    write_model(out, NEW)
    write_model(previous_dir(out), OLD)
    assert len(recover(out)) == 1 and files_in(out) == NEW and not previous_dir(out).exists()


def test_an_unmarked_model_is_not_published(tmp_path):
    out = tmp_path / "out"
    write_model(staging_dir(out), NEW)
    with pytest.raises(FileExistsError, match="not marked complete"):
        publish(staging_dir(out), out)
    assert not out.exists()


def test_exchange_swaps_or_says_it_cannot(tmp_path):
    write_model(tmp_path / "a", OLD)
    write_model(tmp_path / "b", NEW)
    if outputs.exchange(tmp_path / "a", tmp_path / "b"):
        assert files_in(tmp_path / "a") == NEW and files_in(tmp_path / "b") == OLD
    else:
        assert not sys.platform.startswith("linux")


# A run of `hfgpt train` as a user reruns it after a kill: `--resume`, or afresh when there is no
# checkpoint to resume from yet. It touches `started` when training begins.
TRAIN = r"""
import json, sys
from pathlib import Path
from transformers import TrainerCallback
from hfgpt.errors import ResumeError
from hfgpt.training import TrainArguments, train

fields, started = json.loads(sys.argv[1]), Path(sys.argv[2])

class Started(TrainerCallback):
    def on_train_begin(self, *args, **kwargs):
        started.touch()

try:
    train(TrainArguments(**fields, resume=True), callbacks=[Started()])
except ResumeError:
    train(TrainArguments(**fields), callbacks=[Started()])
"""

RUN = dict(
    preset="tiny",
    tokenizer="regex",
    max_length=32,
    batch_size=2,
    max_steps=40,
    eval_every=4,
    save_every=4,
    show_progress=False,
    max_new_tokens=3,
)


def train_in_subprocess(fields: dict, started: Path, kill_after: float | None = None) -> int:
    """Run TRAIN in a subprocess; SIGKILL it `kill_after` seconds after training began (None: let it finish).

    Every run, the reference too, is a fresh process with one torch thread: the same float reductions
    whatever the machine's load, so the weights can be compared bit for bit.
    """
    started.unlink(missing_ok=True)
    process = subprocess.Popen(
        [sys.executable, "-c", TRAIN, json.dumps(fields), str(started)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    if kill_after is None:
        return process.wait(timeout=600)
    deadline = time.monotonic() + 120
    while not started.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(kill_after)
    process.send_signal(signal.SIGKILL)
    return process.wait(timeout=60)


def test_a_training_run_killed_at_random_moments_ends_with_the_same_weights(tmp_path):
    assert train_in_subprocess({"output_dir": str(tmp_path / "reference"), **RUN}, tmp_path / "started") == 0
    reference = (tmp_path / "reference" / "model.safetensors").read_bytes()
    expected = json.loads((tmp_path / "reference" / "training_log.json").read_text())["history"]

    out = tmp_path / "killed"
    fields = {"output_dir": str(out), **RUN}
    # Training takes about 0.5 s, saving and publishing about 1 s more: two kills while training (mid-step or
    # mid-checkpoint), one more likely while saving or publishing (or after, when there is nothing to do).
    moments = random.Random(20240611)
    for low, high in ((0.0, 0.5), (0.0, 0.5), (0.5, 1.5)):
        code = train_in_subprocess(fields, tmp_path / "started", moments.uniform(low, high))
        assert code in (0, -signal.SIGKILL)
    assert train_in_subprocess(fields, tmp_path / "started") == 0  # resumes, or starts afresh

    assert (out / "model.safetensors").read_bytes() == reference
    assert json.loads((out / "training_log.json").read_text())["history"] == expected
    assert not staging_dir(out).exists() and not previous_dir(out).exists() and not (out / MARKER).exists()
    assert not (out / "checkpoints").exists()
    assert os.listdir(out)  # a complete model directory
