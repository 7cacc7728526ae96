"""`accelerate launch` with the configs in examples/accelerate/ on a CPU-only machine (gloo).

accelerate 1.x's `--cpu --num_processes 2` starts a single process unless MPI is configured; its torchrun
launcher (`--multi_gpu`, or a config with `distributed_type: MULTI_GPU`/`FSDP`) starts two, and Accelerate
falls back to the gloo backend when there is no GPU.

FSDP does not run here: accelerate 1.15 turns `ACCELERATE_USE_FSDP` into FSDP only for GPU-like devices
(`AcceleratorState` checks for MULTI_GPU/XPU/NPU/...), so on CPU fsdp.yaml trains as plain DDP over gloo
(Trainer reports `DistributedType.MULTI_CPU`, `is_fsdp_enabled=False`). torch's own FSDP2 `fully_shard`
does run on CPU with gloo, but not through accelerate. So the CPU checks are: DDP matches one process with
the same global batch, and fsdp.yaml turns into the FSDP2 plugin settings intended for the model; the
FSDP launch comparison runs where there are two GPUs.
"""

import json
import math
import os
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "examples" / "accelerate"
STEPS = 16  # within the first epoch (~35 steps of 4 windows): no wrap-around padding of a last batch
RUN = [
    "--preset", "tiny", "--tokenizer", "regex", "--max-length", "32", "--max-steps", str(STEPS),
    "--eval-every", "4", "--drop-rate", "0", "--no-progress", "--max-new-tokens", "3",
]  # fmt: skip
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def run(command, out: Path) -> dict:
    import subprocess

    result = subprocess.run(
        [*command, "--output-dir", str(out), *RUN], capture_output=True, text=True, timeout=300, env=ENV
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("sample: Every effort moves you") == 1  # printed by the main process only
    return json.loads((out / "training_log.json").read_text())


def launch(config: str, batch_size: int, out: Path, port: int) -> dict:
    accelerate = os.path.join(os.path.dirname(sys.executable), "accelerate")
    command = [
        accelerate, "launch", "--config_file", str(CONFIGS / config), "--main_process_port", str(port),
        "-m", "hfgpt.cli", "train", "--batch-size", str(batch_size),
    ]  # fmt: skip
    return run(command, out)


def single_process(batch_size: int, out: Path) -> dict:
    return run([sys.executable, "-m", "hfgpt.cli", "train", "--batch-size", str(batch_size)], out)


def train_steps(log: dict) -> list[dict]:
    return [r for r in log["history"] if "loss" in r]


def assert_same_training(launched: Path, launched_log: dict, reference: Path, reference_log: dict) -> None:
    """Same global batches (4 windows of 32 tokens) give the same losses, tokens seen and final weights.

    Trainer's sampler is seeded (`data_seed`) and accelerate deals its batches out in turn: process 0
    takes windows 0-1, process 1 windows 2-3 of the same permutation one process takes 4 at a time, and
    the gradients averaged across processes equal the one-process gradient of the mean loss (every
    window has the same number of targets). Dropout is off, so nothing else draws per-process randomness.
    """
    from transformers import AutoModelForCausalLM

    import hfgpt  # noqa: F401  (registers HFGPT with the Auto classes)

    steps, expected = train_steps(launched_log), train_steps(reference_log)
    assert [r["step"] for r in steps] == [r["step"] for r in expected] and steps[-1]["step"] == STEPS
    assert [r["tokens_seen"] for r in steps] == [r["tokens_seen"] for r in expected]
    assert all(r["tokens_seen"] == r["step"] * 4 * 32 for r in steps)
    for got, want in zip(steps, expected):  # gloo sums in another order: float32 rounding only
        assert math.isclose(got["loss"], want["loss"], rel_tol=1e-4), (got, want)
    assert steps[-1]["loss"] < steps[0]["loss"] - 0.1  # it trained: the agreement is not of two constants

    model = AutoModelForCausalLM.from_pretrained(launched)
    reference_model = AutoModelForCausalLM.from_pretrained(reference)
    assert type(model).__name__ == "HFGPTForCausalLM"
    assert model.lm_head.weight.data_ptr() == model.transformer.wte.weight.data_ptr()  # the tie survived
    weights, reference_weights = model.state_dict(), reference_model.state_dict()
    assert weights.keys() == reference_weights.keys()
    for name, value in weights.items():
        torch.testing.assert_close(value, reference_weights[name], rtol=1e-3, atol=1e-4, msg=name)


@pytest.mark.skipif(torch.cuda.device_count() > 0, reason="checks the CPU-only (gloo) path")
def test_ddp_config_matches_one_process_with_the_same_global_batch(tmp_path):
    launched = launch("ddp.yaml", 2, tmp_path / "ddp", port=29533)
    reference = single_process(4, tmp_path / "single")
    assert_same_training(tmp_path / "ddp", launched, tmp_path / "single", reference)
    assert (tmp_path / "ddp" / "loss_curve.png").exists()


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="accelerate runs FSDP on GPUs only")
def test_fsdp_config_matches_one_process_with_the_same_global_batch(tmp_path):
    launched = launch("fsdp.yaml", 2, tmp_path / "fsdp", port=29534)
    reference = single_process(4, tmp_path / "single")
    # On GPUs the two runs differ by cuBLAS reduction order as well as gloo's/NCCL's; still float rounding.
    assert_same_training(tmp_path / "fsdp", launched, tmp_path / "single", reference)


def test_fsdp_config_sets_up_fsdp2_for_hfgpt_blocks(monkeypatch):
    """fsdp.yaml, read the way `accelerate launch` reads it, gives FSDP2 wrapping each HFGPTBlock and
    gathering a full state dict at save; the class name resolves against the model."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils import FullyShardedDataParallelPlugin
    from accelerate.utils.launch import prepare_multi_gpu_env
    from torch.distributed.fsdp import StateDictType

    from hfgpt.configuration_hfgpt import HFGPTConfig
    from hfgpt.modeling_hfgpt import HFGPTBlock, HFGPTForCausalLM

    args = launch_command_parser().parse_args(
        ["--config_file", str(CONFIGS / "fsdp.yaml"), "-m", "hfgpt.cli"]
    )
    args, *_ = _validate_launch_command(args)
    env = prepare_multi_gpu_env(args)
    assert env["ACCELERATE_USE_FSDP"] == "true" and args.num_processes == 2
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    plugin = FullyShardedDataParallelPlugin()
    assert plugin.fsdp_version == 2
    assert plugin.state_dict_type == StateDictType.FULL_STATE_DICT
    assert plugin.cpu_ram_efficient_loading is False  # hfgpt train builds its model from a config
    model = HFGPTForCausalLM(HFGPTConfig.from_preset("tiny", vocab_size=50))
    assert plugin.transformer_cls_names_to_wrap == ["HFGPTBlock"] and set(model._no_split_modules) == {
        "HFGPTBlock"
    }
    plugin.set_auto_wrap_policy(model)
    assert plugin.auto_wrap_policy.keywords["transformer_layer_cls"] == {HFGPTBlock}
