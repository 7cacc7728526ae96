"""MFU: FLOPs per token against a hand computation on GPT-2's published size, device peaks, the CLI line."""

import pytest
from transformers import GPT2Config, GPT2LMHeadModel

from hfgpt.cli.train import throughput_note
from hfgpt.training.mfu import model_flops_per_token, peak_flops
from hfgpt.training.pretraining import TrainResult


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


def test_mfu_is_achieved_model_flops_over_peak():
    # 2,000 tokens in 2 s at 1e9 FLOPs per token = 1e12 FLOPS, on a 1e13 FLOPS peak: 10%
    run = result(tokens_trained=2000, seconds=2.0, flops_per_token=1e9, device="GPU", peak_flops=1e13)
    assert run.mfu == pytest.approx(0.10)
    assert throughput_note(run) == ", MFU 10.0% of GPU's bf16 peak (validation time included)"


def test_no_mfu_on_cpu_or_unknown_gpu():
    cpu = result(tokens_trained=2000, seconds=2.0, flops_per_token=1e9)
    assert cpu.mfu is None and throughput_note(cpu) == ""
    unknown = result(tokens_trained=2000, seconds=2.0, flops_per_token=1e9, device="Some Future GPU")
    assert unknown.mfu is None and "not in hfgpt.training.mfu" in throughput_note(unknown)
