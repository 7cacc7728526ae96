"""T5's relative position bias through the real installed entry point: buckets against T5's formula, the bias,
and the whole life of a plugin with learned weights in the score bias (train, save, reload elsewhere, generate)."""

import copy
import json
import math
import subprocess
import sys

import pytest
import torch
from hfgpt_t5bias import T5RelativePositionBias, relative_position_bucket

import hfgpt
from hfgpt.errors import ConfigError
from hfgpt.testing import assert_registered, train_steps


def t5_bucket(relative_position: int, num_buckets: int, max_distance: int) -> int:
    """T5's `_relative_position_bucket(..., bidirectional=False)` written out for one scalar (Raffel et al. 2020)."""
    n = max(-relative_position, 0)
    max_exact = num_buckets // 2
    if n < max_exact:
        return n
    large = max_exact + int(
        math.log(n / max_exact) / math.log(max_distance / max_exact) * (num_buckets - max_exact)
    )
    return min(large, num_buckets - 1)


def test_registered_through_the_installed_entry_point():
    assert_registered("position_encoding", "t5", "hfgpt-t5bias", T5RelativePositionBias)


def test_buckets_by_hand():
    # 32 buckets, max_distance 128: distances 0..15 exact; then 16 + floor(ln(n/16) / ln(8) * 16), capped at 31.
    by_hand = {0: 0, 1: 1, 15: 15, 16: 16, 20: 17, 32: 21, 64: 26, 127: 31, 128: 31, 1000: 31}
    distances = torch.tensor(list(by_hand))
    assert relative_position_bucket(-distances).tolist() == list(by_hand.values())
    assert relative_position_bucket(torch.tensor([1, 3])).tolist() == [0, 0]  # future keys: as distance 0
    # 8 buckets, max_distance 20: 4 + floor(ln(n/4) / ln(5) * 4): 5 -> 4, 10 -> 6, 19 -> 7, 20 -> 8 capped at 7.
    got = relative_position_bucket(-torch.tensor([3, 4, 5, 10, 19, 20]), num_buckets=8, max_distance=20)
    assert got.tolist() == [3, 4, 4, 6, 7, 7]


@pytest.mark.parametrize(("num_buckets", "max_distance"), [(32, 128), (8, 20), (16, 64), (7, 50)])
def test_buckets_match_t5s_formula(num_buckets, max_distance):
    relative = torch.arange(-400, 6)
    expected = [t5_bucket(r, num_buckets, max_distance) for r in relative.tolist()]
    assert relative_position_bucket(relative, num_buckets, max_distance).tolist() == expected


def config(**kwargs):
    return hfgpt.HFGPTConfig.from_preset(
        "tiny", vocab_size=50, position_encoding="t5", drop_rate=0.0, position_encoding_kwargs=kwargs
    )


def test_bias_is_the_table_entry_of_the_bucket_per_head():
    pe = T5RelativePositionBias(config(num_buckets=8, max_distance=20))
    torch.nn.init.normal_(pe.relative_attention_bias.weight)
    table = pe.relative_attention_bias.weight  # (buckets, heads)
    queries, keys = torch.tensor([[10, 30]]), torch.arange(31)[None]
    bias = pe.attention_bias(queries, keys)
    assert bias.shape == (1, 4, 2, 31)
    # Query at 30, key at 20: distance 10 -> bucket 6 (by hand above); key at 28: distance 2 -> bucket 2.
    torch.testing.assert_close(bias[0, :, 1, 20], table[6])
    torch.testing.assert_close(bias[0, :, 1, 28], table[2])
    torch.testing.assert_close(bias[0, :, 0, 15], table[0])  # a future key


def test_options_are_validated():
    with pytest.raises(ConfigError, match="max_distance must be an integer > num_buckets // 2 = 16"):
        T5RelativePositionBias(config(max_distance=16))
    with pytest.raises(ConfigError, match="num_buckets must be an integer >= 2"):
        T5RelativePositionBias(config(num_buckets=1.5))
    with pytest.raises(ConfigError, match=r"unknown t5 option\(s\) \['buckets'\]"):
        T5RelativePositionBias(config(buckets=8))
    assert T5RelativePositionBias(config(num_buckets=8)).relative_attention_bias.weight.shape == (8, 4)


def _model(attn="sdpa", **kwargs):
    torch.manual_seed(0)
    return hfgpt.HFGPTForCausalLM._from_config(copy.deepcopy(config(**kwargs)), attn_implementation=attn)


def test_eager_and_sdpa_agree_and_longer_inputs_work():
    eager, sdpa = _model("eager").eval(), _model("sdpa").eval()
    sdpa.load_state_dict(eager.state_dict())
    ids = torch.randint(0, 50, (2, 3 * eager.config.context_length))  # longer than context_length
    torch.testing.assert_close(eager(ids).logits, sdpa(ids).logits, atol=1e-5, rtol=1e-5)


LOAD_AND_GENERATE = """
import json, sys, torch
import hfgpt  # registers the hfgpt model type with the Auto classes (no remote code needed)
from transformers import AutoModelForCausalLM
model = AutoModelForCausalLM.from_pretrained(sys.argv[1]).eval()
prompt = torch.tensor([json.loads(sys.argv[2])])
cached = model.generate(prompt, max_new_tokens=15, do_sample=False)
uncached = model.generate(prompt, max_new_tokens=15, do_sample=False, use_cache=False)
table = model.transformer.position_encoding.relative_attention_bias.weight
print(json.dumps({"cached": cached[0].tolist(), "uncached": uncached[0].tolist(),
                  "strategy": type(model.transformer.position_encoding).__name__, "table": table.tolist()}))
"""


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_train_save_reload_in_a_fresh_process_and_generate(tmp_path, attn):
    model = _model(attn, num_buckets=8, max_distance=20).train()
    table = model.transformer.position_encoding.relative_attention_bias.weight
    before = table.detach().clone()
    data = torch.arange(48).remainder(7)[None].repeat(4, 1)  # periodic: distance 7 predicts the next token

    def bias_has_a_gradient():  # the bias is trained, not just carried
        assert table.grad is not None and table.grad.abs().sum() > 0

    losses = train_steps(model, data, steps=25, after_backward=bias_has_a_gradient)
    assert losses[-1] < 0.5 * losses[0]
    assert not torch.equal(table.detach(), before)

    model.eval().save_pretrained(tmp_path)
    prompt = [3, 4, 5, 6, 0, 1]
    out = subprocess.run(
        [sys.executable, "-c", LOAD_AND_GENERATE, str(tmp_path), json.dumps(prompt)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    reloaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert reloaded["strategy"] == "T5RelativePositionBias"
    torch.testing.assert_close(torch.tensor(reloaded["table"]), table.detach(), atol=0, rtol=0)
    here = model.generate(torch.tensor([prompt]), max_new_tokens=15, do_sample=False)[0].tolist()
    assert reloaded["cached"] == reloaded["uncached"] == here
    assert here[6:12] == [2, 3, 4, 5, 6, 0]  # it learned the period, through the bias alone


def test_forward_compiles_as_one_graph_with_a_static_cache():
    from transformers.cache_utils import StaticCache

    torch._dynamo.reset()
    model = _model().eval()
    compiled = torch.compile(model.forward, fullgraph=True, backend="eager")
    ids = torch.randint(0, 50, (2, 6))
    cache, expected_cache = (StaticCache(config=model.config, max_cache_len=16) for _ in range(2))
    torch.testing.assert_close(compiled(ids, cache=cache).logits, model(ids, cache=expected_cache).logits)
    step = torch.randint(0, 50, (2, 1))
    torch.testing.assert_close(compiled(step, cache=cache).logits, model(step, cache=expected_cache).logits)
