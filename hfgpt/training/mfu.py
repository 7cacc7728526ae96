"""Model FLOPs utilisation (MFU): the share of an accelerator's peak that a training run turned into model math.

A training step costs about `6 x parameters` FLOPs per token (forward 2, backward 4) plus the attention
scores and context, `12 x layers x context x width` per token (the PaLM paper's appendix B estimate, as
nanoGPT's `estimate_mfu`). MFU divides the achieved model FLOPs per second by the devices' dense bf16 peak;
recomputation, padding and optimizer work do not count, so 100% is out of reach (large runs reach 40-60%).
"""

from __future__ import annotations

# Dense bf16 tensor-core peaks in TFLOPS, from the vendors' datasheets (no structured sparsity). Matched
# against `torch.cuda.get_device_name()` in this order: the first key the name contains wins.
PEAK_BF16_TFLOPS = (
    ("H100 PCIe", 756.0),
    ("H100", 989.0),
    ("H200", 989.0),
    ("GH200", 989.0),
    ("B200", 2250.0),
    ("A100", 312.0),
    ("L40S", 362.0),
    ("L4", 121.0),
    ("A10", 125.0),
    ("4090", 165.0),
)


def model_flops_per_token(model, context_length: int) -> float:
    """Training FLOPs per token of `model` (an HFGPT or GPT-2 model) at `context_length`."""
    params = sum(p.numel() for p in model.parameters())  # tied embeddings count once
    config = model.config
    return 6.0 * params + 12.0 * config.num_hidden_layers * context_length * config.hidden_size


def peak_flops(device_name: str, override_tflops: float | None = None) -> float | None:
    """The dense bf16 peak of one device named `device_name`, in FLOPS; None for a device not in the table."""
    if override_tflops:
        return override_tflops * 1e12
    return next((tflops * 1e12 for key, tflops in PEAK_BF16_TFLOPS if key in device_name), None)


def cuda_peak_flops() -> tuple[str, float | None] | None:
    """(name, peak FLOPS) of the current CUDA device, or None without CUDA."""
    import torch

    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name()
    return name, peak_flops(name)


__all__ = ["PEAK_BF16_TFLOPS", "cuda_peak_flops", "model_flops_per_token", "peak_flops"]
