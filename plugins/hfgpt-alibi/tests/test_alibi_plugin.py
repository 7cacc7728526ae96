"""ALiBi through the real installed entry point: registration, the bias itself, training and long inputs."""

import copy

import torch
from hfgpt_alibi import ALiBiPositionEncoding, alibi_slopes

import hfgpt
from hfgpt.testing import assert_registered, train_steps


def test_registered_through_the_installed_entry_point():
    assert_registered("position_encoding", "alibi", "hfgpt-alibi", ALiBiPositionEncoding)


def test_slopes_match_the_paper():
    # Paper, section 3: for 8 heads the slopes are 1/2, 1/4, ..., 1/256.
    assert torch.allclose(alibi_slopes(8), torch.tensor([2.0**-i for i in range(1, 9)]))
    # For 6 heads: the 4-head sequence (1/4, 1/16, 1/64, 1/256) then every other slope of the 8-head one (1/2, 1/8).
    assert torch.allclose(
        alibi_slopes(6), torch.tensor([2.0**-2, 2.0**-4, 2.0**-6, 2.0**-8, 2.0**-1, 2.0**-3])
    )


def test_bias_is_slope_times_distance():
    config = hfgpt.HFGPTConfig.from_preset("tiny", vocab_size=50, position_encoding="alibi")
    bias = ALiBiPositionEncoding(config).attention_bias(torch.arange(2, 4)[None], torch.arange(4)[None])
    assert bias.shape == (1, config.n_heads, 2, 4)
    slope = 2.0**-2  # first of 4 heads
    expected = torch.tensor([[-2.0, -1.0, 0.0, 1.0], [-3.0, -2.0, -1.0, 0.0]]) * slope
    assert torch.allclose(bias[0, 0], expected)


def _model(attn: str):
    torch.manual_seed(0)
    config = hfgpt.HFGPTConfig.from_preset("tiny", vocab_size=50, position_encoding="alibi", drop_rate=0.0)
    return hfgpt.HFGPTForCausalLM._from_config(copy.deepcopy(config), attn_implementation=attn).eval()


def test_eager_and_sdpa_agree_and_longer_inputs_work():
    eager, sdpa = _model("eager"), _model("sdpa")
    sdpa.load_state_dict(eager.state_dict())
    ids = torch.randint(0, 50, (2, 3 * eager.config.context_length))  # longer than context_length
    torch.testing.assert_close(eager(ids).logits, sdpa(ids).logits, atol=1e-5, rtol=1e-5)


def test_cached_generation_matches_uncached():
    model = _model("sdpa")
    prompt = torch.randint(0, 50, (1, 5))
    with_cache = model.generate(prompt, max_new_tokens=12, do_sample=False)
    without = model.generate(prompt, max_new_tokens=12, do_sample=False, use_cache=False)
    assert torch.equal(with_cache, without)


def test_loss_falls_when_training():
    data = torch.arange(40).remainder(7)[None].repeat(4, 1)  # a periodic sequence: easy to learn
    losses = train_steps(_model("sdpa").train(), data, steps=30)
    assert losses[-1] < 0.5 * losses[0]


def test_save_and_load_keep_the_slopes(tmp_path):
    from transformers import AutoModelForCausalLM

    model = _model("sdpa")
    model.save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert loaded.config.position_encoding == "alibi"
    ids = torch.randint(0, 50, (1, 20))
    assert torch.equal(model(ids).logits, loaded(ids).logits)
