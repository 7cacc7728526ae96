"""Positional strategies: each against an independent formula, and each one trains and generates."""

import math

import pytest
import torch

from hfgpt import HFGPTConfig, HFGPTForCausalLM, PositionEncoding
from hfgpt.data.sources import default_corpus_path
from hfgpt.plugins import get_position_encoding


def config(**fields):
    return HFGPTConfig.from_preset("tiny", vocab_size=60, drop_rate=0.0, **fields)


def test_sinusoidal_matches_attention_is_all_you_need():
    pe = get_position_encoding("sinusoidal")(config(position_encoding="sinusoidal"))
    d = 32
    out = pe.embed(torch.zeros(1, 5, d), torch.arange(5)[None])[0]
    for pos in range(5):
        for i in range(d // 2):
            angle = pos / 10000 ** (2 * i / d)
            assert math.isclose(out[pos, 2 * i].item(), math.sin(angle), abs_tol=1e-5)
            assert math.isclose(out[pos, 2 * i + 1].item(), math.cos(angle), abs_tol=1e-5)


def test_rope_rotates_pairs_by_position_times_frequency():
    cfg = config(position_encoding="rope")
    pe = get_position_encoding("rope")(cfg)
    hd = cfg.head_dim  # 8: frequencies theta^(-0/8), theta^(-2/8), ...
    q = torch.randn(1, 1, 3, hd)
    rotated, _ = pe.rotate(q, q.clone(), torch.arange(3)[None])
    for pos in range(3):
        for i in range(hd // 2):
            angle = pos * 10000 ** (-2 * i / hd)
            a, b = q[0, 0, pos, i].item(), q[0, 0, pos, i + hd // 2].item()  # Llama's half-split pairs
            assert math.isclose(
                rotated[0, 0, pos, i].item(), a * math.cos(angle) - b * math.sin(angle), abs_tol=1e-5
            )
            assert math.isclose(
                rotated[0, 0, pos, i + hd // 2].item(),
                b * math.cos(angle) + a * math.sin(angle),
                abs_tol=1e-5,
            )


def test_rope_scores_depend_only_on_relative_distance():
    pe = get_position_encoding("rope")(config(position_encoding="rope"))
    q, k = torch.randn(1, 1, 1, 8), torch.randn(1, 1, 1, 8)
    scores = []
    for offset in (0, 7, 30):
        rq, _ = pe.rotate(q, q, torch.tensor([[offset + 5]]))
        _, rk = pe.rotate(k, k, torch.tensor([[offset + 2]]))
        scores.append((rq * rk).sum().item())
    assert scores[0] == pytest.approx(scores[1], abs=1e-5) and scores[0] == pytest.approx(scores[2], abs=1e-5)


def test_learned_adds_its_table():
    pe = get_position_encoding("learned")(config())
    x = torch.randn(2, 4, 32)
    torch.testing.assert_close(pe.embed(x, torch.arange(4)[None]), x + pe.wpe.weight[:4])
    assert pe.max_positions == 64


def test_none_changes_nothing():
    pe = get_position_encoding("none")(config(position_encoding="none"))
    x = torch.randn(1, 3, 32)
    assert (
        pe.embed(x, torch.arange(3)[None]) is x
        and pe.attention_bias(torch.arange(3)[None], torch.arange(3)[None]) is None
    )


def test_a_custom_strategy_plugs_in_through_a_hook(monkeypatch):
    """A plugin overriding only attention_bias: a bias that forbids all but the current token."""
    from hfgpt import hookimpl, plugins

    class OnlySelf(PositionEncoding):
        def attention_bias(self, query_positions, key_positions):
            same = query_positions[:, :, None] == key_positions[:, None, :]  # (batch, q_len, kv_len)
            return torch.where(same, 0.0, -1e9)[:, None]

    class Plugin:
        @hookimpl
        def register_position_encodings(self, register):
            register("only-self", OnlySelf)

    plugins.load_plugins()
    plugins.pm.register(Plugin(), name="only-self-plugin")
    try:
        torch.manual_seed(0)
        model = HFGPTForCausalLM(config(position_encoding="only-self", n_layers=1)).eval()
        ids = torch.randint(0, 60, (1, 6))
        # Every position sees only itself, so changing earlier tokens cannot change later logits.
        changed = ids.clone()
        changed[0, :3] = (changed[0, :3] + 1) % 60
        torch.testing.assert_close(model(ids).logits[0, 3:], model(changed).logits[0, 3:])
    finally:
        plugins.pm.unregister(name="only-self-plugin")


@pytest.mark.parametrize("strategy", ["learned", "sinusoidal", "rope", "none"])
def test_every_strategy_learns_the_verdict(strategy, verdict_windows):
    torch.manual_seed(0)
    inputs, targets = verdict_windows
    vocab_size = int(inputs.max()) + 1
    model = HFGPTForCausalLM(
        HFGPTConfig.from_preset("tiny", vocab_size=vocab_size, position_encoding=strategy, drop_rate=0.0)
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-3)
    losses = []
    for step in range(30):
        batch = slice(2 * step % 16, 2 * step % 16 + 2)
        loss = model(inputs[batch], shift_labels=targets[batch]).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    # An untrained model sits at ln(vocab_size) ~ 7.0; only learning the text's statistics gets far below it.
    assert sum(losses[-3:]) / 3 < losses[0] - 1.5
    model.eval()
    out = model.generate(inputs[:1, :8], max_new_tokens=6, do_sample=False)
    assert out.shape == (1, 14)


@pytest.fixture(scope="module")
def verdict_windows():
    from hfgpt import RegexTokenizer
    from hfgpt.data import window

    text = default_corpus_path().read_text()  # a word-level vocabulary of 1,132 keeps this fast
    data = window(text, RegexTokenizer.from_corpus(text), max_length=64, stride=64).with_format("torch")
    return data["input_ids"][:16], data["shift_labels"][:16]
