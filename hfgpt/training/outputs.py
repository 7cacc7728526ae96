"""Output-directory safety: a finished model is never overwritten unless asked, and only by a finished one.

A run works in `<output_dir>.partial/` (where its checkpoints live, so an interrupted run can resume) and
`publish()` swaps the complete result into `<output_dir>` at the end. Pretraining and the fine-tuning
recipes share this machinery.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from hfgpt.errors import OutputDirError, ResumeError

MODEL_FILES = ("config.json", "model.safetensors")


def holds_model(path: Path) -> bool:
    return any((path / name).exists() for name in MODEL_FILES)


def staging_dir(output_dir: Path) -> Path:
    return output_dir.with_name(output_dir.name + ".partial")


def check_output_dir(output_dir: Path, overwrite: bool, resume: bool = False) -> None:
    """Refuse an output directory that holds a model (unless `overwrite`/`resume`) or cannot be one."""
    if output_dir.exists() and not output_dir.is_dir():
        raise OutputDirError(f"{output_dir} exists and is not a directory: choose another --output-dir")
    if holds_model(output_dir) and not (overwrite or resume):
        raise OutputDirError(
            f"{output_dir} already holds a trained model; pass --overwrite to replace it (it is replaced only "
            "once the new run has finished) or choose another --output-dir"
        )
    if resume and not list(staging_dir(output_dir).glob("checkpoints/checkpoint-*")):
        raise ResumeError(
            f"nothing to resume: no checkpoint of an interrupted run in {staging_dir(output_dir)}/checkpoints"
        )


def latest_complete_checkpoint(checkpoints: Path) -> str | None:
    """The newest checkpoint that was written completely (a crash mid-save leaves an incomplete one)."""
    found = sorted(checkpoints.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]), reverse=True)
    for path in found:
        if (path / "trainer_state.json").exists() and holds_model(path):
            return str(path)
    return None


def publish(staging: Path, output_dir: Path) -> None:
    """Swap the finished run into place; the previous model is removed only after the swap succeeded."""
    previous = output_dir.with_name(output_dir.name + ".previous")
    if previous.exists():
        shutil.rmtree(previous)
    if output_dir.exists():
        os.replace(output_dir, previous)
    os.replace(staging, output_dir)
    if previous.exists():
        shutil.rmtree(previous)


__all__ = ["check_output_dir", "holds_model", "latest_complete_checkpoint", "publish", "staging_dir"]
