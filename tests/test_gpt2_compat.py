"""GPT-2 compatibility: weights from transformers' GPT2LMHeadModel give the same logits in hfgpt."""

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from hfgpt import from_gpt2


@pytest.fixture(scope="module")
def gpt2():
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=500, n_positions=64, n_embd=48, n_layer=3, n_head=4)
    return GPT2LMHeadModel(config).eval()


def test_logits_match_a_saved_gpt2_checkpoint(gpt2, tmp_path):
    gpt2.save_pretrained(tmp_path)
    ours = from_gpt2(tmp_path).eval()
    ids = torch.randint(0, 500, (3, 40))
    torch.testing.assert_close(ours(ids).logits, gpt2(ids).logits, atol=1e-4, rtol=0)


def test_logits_match_a_gpt2_instance_and_generation_agrees(gpt2):
    ours = from_gpt2(gpt2).eval()
    assert ours.config.context_length == 64 and ours.config.qkv_bias
    ids = torch.randint(0, 500, (2, 10))
    mask = torch.ones_like(ids)
    ref = gpt2.generate(ids, attention_mask=mask, max_new_tokens=12, do_sample=False, pad_token_id=0)
    assert torch.equal(
        ours.generate(ids, attention_mask=mask, max_new_tokens=12, do_sample=False, pad_token_id=0), ref
    )


def test_converted_model_saves_and_reloads_as_hfgpt(gpt2, tmp_path):
    from transformers import AutoModelForCausalLM

    from_gpt2(gpt2).save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    ids = torch.randint(0, 500, (1, 20))
    torch.testing.assert_close(loaded(ids).logits, gpt2(ids).logits, atol=1e-4, rtol=0)


def test_bad_sources_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a directory with a GPT-2 checkpoint"):
        from_gpt2(tmp_path / "missing")
    with pytest.raises(TypeError, match="expects a GPT2LMHeadModel or a directory"):
        from_gpt2(42)
