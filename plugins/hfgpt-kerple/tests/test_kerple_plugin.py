"""KERPLE through the real installed entry point: the bias against the paper's formula, its parameters'
constraint and initialisation, and training through it."""

import copy
import math

import torch
from hfgpt_kerple import KerplePositionEncoding

import hfgpt
from hfgpt.testing import assert_registered, train_steps


def config(**fields):
    return hfgpt.HFGPTConfig.from_preset(
        "tiny", vocab_size=50, position_encoding="kerple", drop_rate=0.0, **fields
    )


def test_registered_through_the_installed_entry_point():
    assert_registered("position_encoding", "kerple", "hfgpt-kerple", KerplePositionEncoding)


def test_bias_is_the_papers_logarithmic_kernel():
    """Chi et al. 2022, eq. (log variant): -r1 log(1 + r2 |m - n|), r1, r2 > 0 per head; written out per element."""
    pe = KerplePositionEncoding(config())
    with torch.no_grad():
        pe.r1.copy_(torch.tensor([0.5, 1.7, 0.003, 2.0]))  # 0.003: below the clamp, used as 0.01
        pe.r2.copy_(torch.tensor([0.25, 0.9, 1.3, -0.2]))  # -0.2: used as 0.01
    # Two rows: plain positions, and a packed row whose second document restarts at 0.
    queries = torch.tensor([[5, 6, 7], [1, 0, 1]])
    keys = torch.tensor([[0, 1, 2, 3, 4, 5, 6, 7], [0, 1, 2, 3, 4, 0, 1, 2]])
    bias = pe.attention_bias(queries, keys)
    assert bias.shape == (2, 4, 3, 8)
    for row in range(2):
        for h in range(4):
            r1 = max(pe.r1[h].item(), 0.01)
            r2 = max(pe.r2[h].item(), 0.01)
            for i in range(3):
                for j in range(8):
                    m, n = queries[row, i].item(), keys[row, j].item()
                    expected = -r1 * math.log(1 + r2 * abs(m - n))
                    assert math.isclose(bias[row, h, i, j].item(), expected, rel_tol=1e-5, abs_tol=1e-6)


def test_fresh_parameters_follow_the_papers_init_and_reload_exactly(tmp_path):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = hfgpt.HFGPTForCausalLM(config(n_heads=8, emb_dim=64)).eval()
    pe = model.transformer.position_encoding
    assert 0 <= pe.r1.min() and pe.r1.max() <= 2 and 0 <= pe.r2.min() and pe.r2.max() <= 1
    assert len(set(pe.r1.tolist())) == 8  # random per head, not a constant
    model.save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    torch.testing.assert_close(loaded.transformer.position_encoding.r1, pe.r1, atol=0, rtol=0)
    ids = torch.randint(0, 50, (1, 90))  # longer than context_length (64): any length works
    torch.testing.assert_close(loaded(ids).logits, model(ids).logits, atol=0, rtol=0)


def test_loss_falls_and_the_kernel_is_trained():
    torch.manual_seed(0)
    model = hfgpt.HFGPTForCausalLM._from_config(copy.deepcopy(config()), attn_implementation="sdpa").train()
    pe = model.transformer.position_encoding

    def kernel_has_gradients():
        assert pe.r1.grad.abs().sum() > 0 and pe.r2.grad.abs().sum() > 0

    data = torch.arange(40).remainder(7)[None].repeat(4, 1)
    losses = train_steps(model, data, steps=30, after_backward=kernel_has_gradients)
    assert losses[-1] < 0.5 * losses[0]
