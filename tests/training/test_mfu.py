"""MFU: FLOPs per token against a hand computation on GPT-2's published size, device peaks, the summary line."""

import pytest
from transformers import GPT2Config, GPT2LMHeadModel

from hfgpt.training.mfu import model_flops_per_token, peak_flops
from hfgpt.training.pretraining import TrainResult
from hfgpt.training.progress import summary_lines


def test_flops_per_token_of_gpt2_small_by_hand():
    model = GPT2LMHeadModel(GPT2Config())  # 124,439,808 parameters with the tied head, as published
    # 6 x N for the matmuls of forward and backward, plus 12 x layers x context x width for attention
    assert model_flops_per_token(model, 1024) == 6 * 124_439_808 + 12 * 12 * 1024 * 768


@pytest.mark.parametrize(
    "name, tflops",
    [
        ("NVIDIA H100 80GB HBM3", 989.0),
        ("NVIDIA H100 PCIe", 756.0),
        ("NVIDIA H200", 989.0),
        ("NVIDIA A100-SXM4-80GB", 312.0),
        ("NVIDIA L4", 121.0),
    ],
)
def test_peak_of_known_devices(name, tflops):
    assert peak_flops(name) == tflops * 1e12


def test_unknown_device_has_no_peak_unless_given():
    assert peak_flops("Some Future GPU") is None
    assert peak_flops("Some Future GPU", override_tflops=100.0) == 100e12


def result(**fields):
    return TrainResult(output_dir=None, history=[], final_train_loss=None, final_eval_loss=None, sample="",
                       **fields)  # fmt: skip


def speed_line(run) -> str:
    return next(line for line in summary_lines(run) if line.startswith("steady state"))


def test_mfu_is_achieved_model_flops_over_peak():
    # 10 steady steps of 200 tokens in 2 s at 1e9 FLOPs per token = 1e12 FLOPS, on a 1e13 FLOPS peak: 10%
    run = result(steady_steps=10, steady_seconds=2.0, tokens_per_step=200, flops_per_token=1e9, device="GPU",
                 peak_flops=1e13, tokens_trained=2600, warmup_steps=3)  # fmt: skip
    assert run.tokens_per_second == pytest.approx(1000.0) and run.mfu == pytest.approx(0.10)
    assert speed_line(run).startswith("steady state: 200 ms/step, 1,000 tokens/s, MFU 10.0% on GPU")


def test_no_mfu_on_cpu_or_unknown_gpu():
    cpu = result(steady_steps=10, steady_seconds=2.0, tokens_per_step=200, flops_per_token=1e9)
    assert cpu.mfu is None and "MFU" not in speed_line(cpu)
    unknown = result(steady_steps=10, steady_seconds=2.0, tokens_per_step=200, flops_per_token=1e9,
                     device="Some Future GPU")  # fmt: skip
    assert unknown.mfu is None and "not in hfgpt.training.mfu" in speed_line(unknown)


def test_too_short_a_run_has_no_steady_state():
    run = result(tokens_trained=128, warmup_steps=1, tokens_per_step=128)
    assert run.tokens_per_second is None and run.mfu is None
    assert summary_lines(run) == ["trained on 128 tokens; too few steps for a steady-state speed"]
