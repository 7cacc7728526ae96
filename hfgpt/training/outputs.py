"""Output-directory safety: a finished model is never overwritten unless asked, and only by a finished one.

A run works in `<output_dir>.partial/` (where its checkpoints live, so an interrupted run can resume). Once
the finished model is saved there, `mark_complete()` writes the marker file `hfgpt-publish.json` into it,
last, and `publish()` swaps it into `<output_dir>`. Pretraining and the fine-tuning recipes share this.

Guarantees, whatever instant a run is killed at (SIGKILL, power loss aside):

* On Linux (renameat2 with RENAME_EXCHANGE) `<output_dir>` always holds either the complete old model or
  the complete new one: the two directories are swapped in one atomic step. Elsewhere publishing falls back
  to two renames through `<output_dir>.previous`, and a kill between them leaves no `<output_dir>` until
  `recover()` runs.
* `recover()`, run at the start of every run, finishes or undoes what a kill left: it publishes a marked
  `.partial`, restores a `.previous` that lost its `<output_dir>`, and removes leftovers. What the marker
  means where it is found:

  - in `<output_dir>.partial`: a complete new model waiting to be published;
  - in `<output_dir>`: published, cleanup pending (a `.partial` beside it is the old model an exchange left);
  - nowhere: a `.partial` is an interrupted run, which `--resume` continues from its checkpoints.

* The staged `checkpoints/` folder is removed before publishing, so a published model holds only the model;
  a kill before the marker is written leaves the checkpoints for `--resume`, a kill after it leaves a model
  that `recover()` publishes.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import sys
from collections.abc import Callable
from os import replace, unlink
from pathlib import Path
from shutil import rmtree

from hfgpt.errors import OutputDirError, ResumeError

MODEL_FILES = ("config.json", "model.safetensors", "adapter_config.json")  # adapter: a LoRA run's output
MARKER = "hfgpt-publish.json"

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def holds_model(path: Path) -> bool:
    return any((path / name).exists() for name in MODEL_FILES)


def staging_dir(output_dir: Path) -> Path:
    return output_dir.with_name(output_dir.name + ".partial")


def previous_dir(output_dir: Path) -> Path:
    return output_dir.with_name(output_dir.name + ".previous")


def is_marked(path: Path) -> bool:
    return (path / MARKER).is_file()


def stderr_report(message: str) -> None:
    print(message, file=sys.stderr)


def check_output_dir(output_dir: Path, overwrite: bool, resume: bool = False) -> None:
    """Refuse an output directory that holds a model (unless `overwrite`/`resume`) or cannot be one."""
    if output_dir.exists() and not output_dir.is_dir():
        raise OutputDirError(f"{output_dir} exists and is not a directory: choose another --output-dir")
    if holds_model(output_dir) and not (overwrite or resume):
        raise OutputDirError(
            f"{output_dir} already holds a trained model; pass --overwrite to replace it (it is replaced only "
            "once the new run has finished) or choose another --output-dir"
        )
    if (
        resume
        and not finished_run(output_dir)
        and not checkpoint_dirs(staging_dir(output_dir) / "checkpoints")
    ):
        raise ResumeError(
            f"nothing to resume: no checkpoint of an interrupted run in {staging_dir(output_dir)}/checkpoints; "
            "run without --resume to start afresh"
        )


def finished_run(output_dir: Path) -> bool:
    """Whether `--resume` has nothing left to do: no interrupted run, and `output_dir` holds a run's model
    (after `recover()`, which publishes a run that was killed once its model was complete)."""
    return not staging_dir(output_dir).exists() and (output_dir / "training_log.json").is_file()


def checkpoint_dirs(checkpoints: Path) -> list[Path]:
    """The `checkpoint-<step>` folders in `checkpoints`, newest first."""
    found = [p for p in checkpoints.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()]
    return sorted(found, key=lambda p: int(p.name.split("-")[-1]), reverse=True)


def checkpoint_problem(path: Path) -> str | None:
    """Why the checkpoint in `path` cannot be resumed from (a kill mid-save leaves one half written), or
    None. Reads what Trainer reads on resume: its state, the random states and the weights' header."""
    state = path / "trainer_state.json"
    if not state.is_file():
        return "trainer_state.json is missing"
    try:
        json.loads(state.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        return f"trainer_state.json is not valid JSON ({exc})"
    if not holds_model(path):
        return "it holds no model weights"
    for rng in sorted(path.glob("rng_state*.pth")):
        if problem := _torch_file_problem(rng):
            return f"{rng.name} does not load ({problem})"
    weights = path / "model.safetensors"
    if weights.exists() and (problem := _safetensors_problem(weights)):
        return f"model.safetensors does not open ({problem})"
    return None


def _torch_file_problem(path: Path) -> str | None:
    import torch
    from transformers.trainer_pt_utils import safe_globals

    try:
        with safe_globals():  # the numpy types Trainer itself allows in a random-state file
            torch.load(path, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure to load means Trainer would fail the same way
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return None


def _safetensors_problem(path: Path) -> str | None:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as weights:
            weights.keys()
    except Exception as exc:  # noqa: BLE001 - a truncated header raises several error types
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return None


def latest_complete_checkpoint(checkpoints: Path, report: Callable[[str], None] = stderr_report) -> str:
    """The newest checkpoint in `checkpoints` that loads; each newer one that does not is reported and skipped.

    Raises:
        ResumeError: no checkpoint in `checkpoints` loads.
    """
    found = checkpoint_dirs(checkpoints)
    for path in found:
        problem = checkpoint_problem(path)
        if problem is None:
            return str(path)
        report(f"hfgpt: skipped checkpoint {path}: {problem} (a run killed while saving it leaves it so)")
    raise ResumeError(
        f"no usable checkpoint to resume from in {checkpoints} ({len(found)} found, none loads): run without "
        "--resume to start afresh"
    )


def mark_complete(staging: Path, **info) -> None:
    """Write the marker that says `staging` holds a complete model, ready to publish. Call it last: what is
    written before it must be on disk, whatever happens after."""
    for path in staging.iterdir():
        if path.is_file():
            _fsync(path)
    marker = staging / MARKER
    marker.write_text(json.dumps({"complete": True, **info}))
    _fsync(marker)
    _fsync(staging)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def exchange(first: Path, second: Path) -> bool:
    """Swap two directories in one atomic step (Linux renameat2 RENAME_EXCHANGE).

    Returns False where the system cannot (another OS, an old kernel or a file system without it), so the
    caller falls back to plain renames. Other failures raise `OSError`.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):  # a C library older than glibc 2.28
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    old, new = os.fsencode(first), os.fsencode(second)
    if renameat2(_AT_FDCWD, old, _AT_FDCWD, new, _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(code, f"cannot swap {first} and {second}: {os.strerror(code)}")


def publish(staging: Path, output_dir: Path) -> None:
    """Swap the finished, marked model in `staging` into `output_dir`; the old model is removed only after.

    Each step leaves a state `recover()` finishes (see the module docstring), which is why the marker is
    removed from `output_dir` last: until then a `staging` beside it is known to be the old model.
    """
    if not is_marked(staging):
        raise OutputDirError(f"{staging} is not marked complete ({MARKER} missing): it cannot be published")
    if (staging / "checkpoints").exists():
        rmtree(staging / "checkpoints")  # only needed to resume; the model is complete
    previous = previous_dir(output_dir)
    if output_dir.exists():
        if exchange(staging, output_dir):
            rmtree(staging)  # the old model, which the exchange moved here
        else:
            if previous.exists():
                rmtree(previous)
            replace(output_dir, previous)
            replace(staging, output_dir)
    else:
        replace(staging, output_dir)
    if previous.exists():
        rmtree(previous)
    unlink(output_dir / MARKER)


def recover(output_dir: Path) -> list[str]:
    """Finish or undo what a killed run left around `output_dir`; return one line per thing done.

    Run it before anything else looks at `output_dir` (and in one process only): it publishes a complete
    model left in `<output_dir>.partial`, restores `<output_dir>.previous` when `<output_dir>` is gone,
    and removes leftovers (an old model beside a published one, the marker). An interrupted run (a
    `.partial` without the marker) is left alone for `--resume`.
    """
    output_dir = Path(output_dir)
    staging, previous = staging_dir(output_dir), previous_dir(output_dir)
    done = []
    if is_marked(output_dir):  # a publish swapped the model in, then was killed while cleaning up
        if staging.exists() and not is_marked(staging):
            rmtree(staging)
        if previous.exists():
            rmtree(previous)
        unlink(output_dir / MARKER)
        done.append(f"finished publishing the model in {output_dir} (removed the old one a killed run left)")
    if is_marked(staging):
        publish(staging, output_dir)
        done.append(f"published the finished model a killed run left in {staging}")
    elif previous.exists() and (not output_dir.exists() or _is_empty_dir(output_dir)):
        if output_dir.exists():
            output_dir.rmdir()
        replace(previous, output_dir)
        if is_marked(output_dir):
            unlink(output_dir / MARKER)
        done.append(f"restored the model a killed run had moved to {previous}")
    elif previous.exists() and holds_model(output_dir):
        rmtree(previous)
        done.append(f"removed {previous}, the old model a killed run left beside the new one")
    return [f"hfgpt: recovered {output_dir}: {what}" for what in done]


def _is_empty_dir(path: Path) -> bool:
    return path.is_dir() and not any(path.iterdir())


class RunDirectory:
    """The one lifecycle of every training run, pretraining and fine-tuning alike.

    `open()` finishes or undoes what a killed earlier run left (`recover`), refuses an output directory that
    holds a model (unless `overwrite` or `resume`) and clears an interrupted run's leftovers unless resuming;
    the run works in `staging` (its Trainer's checkpoints in `checkpoints`); `save()` writes the model, the
    tokenizer and `training_log.json` there and marks it complete, last; `publish()` swaps it into place.
    Without an `output_dir` the run works in a temporary directory, removed by `close()`, and publishes nothing.

    Args:
        output_dir (`Path`, *optional*): where the finished model goes.
        overwrite (`bool`): replace a model already there (once the new one is finished).
        resume (`bool`): continue an interrupted run from its checkpoints.
        report: called with one line per thing `open()` recovered or a checkpoint it skipped.
    """

    def __init__(
        self,
        output_dir: str | Path | None,
        *,
        overwrite: bool = False,
        resume: bool = False,
        report: Callable[[str], None] = stderr_report,
    ):
        import tempfile

        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.overwrite, self.resume, self.report = overwrite, resume, report
        self._scratch = None if output_dir is not None else tempfile.TemporaryDirectory(prefix="hfgpt-run-")
        self.staging = staging_dir(self.output_dir) if output_dir is not None else Path(self._scratch.name)

    @property
    def checkpoints(self) -> Path:
        return self.staging / "checkpoints"

    def recover(self) -> None:
        """Finish or undo what a killed run left (one process only, before anything looks at the directory)."""
        if self.output_dir is not None:
            for message in recover(self.output_dir):
                self.report(message)

    def check(self) -> None:
        """Refuse an output directory that holds a model, or `resume` with nothing to resume."""
        if self.output_dir is not None:
            check_output_dir(self.output_dir, self.overwrite, self.resume)

    def finished(self) -> bool:
        """Whether `resume` has nothing left to do: the run finished and its model is published."""
        return self.output_dir is not None and finished_run(self.output_dir)

    def clear(self) -> None:
        """Remove an interrupted run's leftovers, unless resuming it."""
        if self.output_dir is not None and not self.resume and self.staging.exists():
            rmtree(self.staging)

    def open(self) -> RunDirectory:
        """`recover()`, `check()` and `clear()`, for a run in one process."""
        self.recover()
        self.check()
        self.clear()
        return self

    def resume_checkpoint(self) -> str | None:
        """The newest checkpoint that loads, when resuming (`latest_complete_checkpoint`)."""
        return latest_complete_checkpoint(self.checkpoints, self.report) if self.resume else None

    def save(self, trainer, tokenizer, log: dict) -> None:
        """Write the model, the tokenizer and `training_log.json` (`log`) into `staging` and mark it complete.

        Every process calls it (under FSDP gathering the weights is a collective); the main process writes.
        """
        trainer.save_model(str(self.staging))
        if not trainer.is_world_process_zero():
            return
        tokenizer.save_pretrained(str(self.staging))
        (self.staging / "training_log.json").write_text(json.dumps(log, indent=1, default=str))
        if self.output_dir is not None:
            mark_complete(self.staging)  # last: from here on the model is published even if this process dies

    def publish(self) -> Path | None:
        """Swap the finished model into `output_dir` (None, and nothing done, without one)."""
        if self.output_dir is None:
            return None
        publish(self.staging, self.output_dir)
        return self.output_dir

    def close(self) -> None:
        if self._scratch is not None:
            self._scratch.cleanup()


def run_history(log_history: list[dict], tokens_per_step: int | None = None) -> list[dict]:
    """The run's losses (and accuracies) by optimizer step, from Trainer's `state.log_history`; with
    `tokens_per_step`, also the tokens seen at each.

    Built from Trainer's log rather than recorded as it goes: a checkpoint carries the log, so a resumed run
    (even one resumed from its final step, with nothing left to train) knows the losses of the whole run.
    """
    keys = ("loss", "eval_loss", "eval_accuracy")
    history = []
    for record in log_history:
        values = {key: record[key] for key in keys if key in record}
        if "loss" in values or "eval_loss" in values:
            seen = {} if tokens_per_step is None else {"tokens_seen": record["step"] * tokens_per_step}
            history.append({"step": record["step"], **seen, **values})
    return history


__all__ = [
    "MARKER",
    "RunDirectory",
    "run_history",
    "check_output_dir",
    "checkpoint_problem",
    "exchange",
    "finished_run",
    "holds_model",
    "latest_complete_checkpoint",
    "mark_complete",
    "previous_dir",
    "publish",
    "recover",
    "staging_dir",
]
