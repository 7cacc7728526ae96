"""`accelerate launch` runs the same training with two processes on a CPU-only machine (gloo).

accelerate 1.x's `--cpu --num_processes 2` starts a single process unless MPI is configured; its torchrun
launcher (`--multi_gpu`) starts two, and Accelerate falls back to the gloo backend when there is no GPU.
"""

import json
import os
import sys

import pytest
import torch


@pytest.mark.skipif(torch.cuda.device_count() > 0, reason="checks the CPU-only (gloo) path")
def test_two_process_training(tmp_path):
    import subprocess

    accelerate = os.path.join(os.path.dirname(sys.executable), "accelerate")
    out = tmp_path / "run"
    command = [
        accelerate, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "29533",
        "-m", "hfgpt.cli", "train", "--output-dir", str(out), "--preset", "tiny", "--tokenizer", "regex",
        "--max-length", "32", "--epochs", "1", "--eval-every", "2", "--no-progress", "--max-new-tokens", "3",
    ]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("sample: Every effort moves you") == 1  # printed by the main process only
    log = json.loads((out / "training_log.json").read_text())
    steps = [r for r in log["history"] if "loss" in r]
    # Each optimizer step consumes 2 processes x batch 2 x 32 tokens.
    assert steps and all(r["tokens_seen"] == r["step"] * 2 * 2 * 32 for r in steps)
    assert (out / "model.safetensors").exists() and (out / "loss_curve.png").exists()
