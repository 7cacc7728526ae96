"""CoPE through the real installed entry point and hfgpt's per-layer content hook: the bias against the paper's
formula (loops over i, j, t), masked keys, the zero start, and training through it."""

import copy
import math

import torch
from hfgpt_cope import CoPEPositionEncoding

import hfgpt
from hfgpt.testing import assert_registered, train_steps


def config(**options):
    return hfgpt.HFGPTConfig.from_preset(
        "tiny", vocab_size=50, position_encoding="cope", drop_rate=0.0, position_encoding_kwargs=options
    )


def test_registered_through_the_installed_entry_point():
    assert_registered("position_encoding", "cope", "hfgpt-cope", CoPEPositionEncoding)
    assert CoPEPositionEncoding.content_score_bias and not CoPEPositionEncoding.score_bias


def cope_by_hand(q, k, emb, visible, npos_max):
    """Golovneva et al. 2024, eqs. 3-5 and the interpolation of section 3: for one head, `q` (q_len, d), `k`
    (kv_len, d), `emb` (d, npos_max); g_it = sigmoid(q_i . k_t / sqrt(d)) for visible t, p_ij = sum_{t=j..last}
    g_it, clamped to npos_max - 1, and the bias q_i . ((p - floor p) e[ceil p] + (1 - p + floor p) e[floor p])."""
    q_len, d = q.shape
    kv_len = k.shape[0]
    out = [[0.0] * kv_len for _ in range(q_len)]
    for i in range(q_len):
        gates = [
            1 / (1 + math.exp(-sum(q[i, c].item() * k[t, c].item() for c in range(d)) / math.sqrt(d)))
            if visible[i][t]
            else 0.0
            for t in range(kv_len)
        ]
        for j in range(kv_len):
            p = min(sum(gates[t] for t in range(j, kv_len)), npos_max - 1)
            low, high, w = math.floor(p), math.ceil(p), p - math.floor(p)
            e = [w * emb[c, high].item() + (1 - w) * emb[c, low].item() for c in range(d)]
            out[i][j] = sum(q[i, c].item() * e[c] for c in range(d))
    return out


def test_bias_is_the_papers_contextual_position_embedding():
    pe = CoPEPositionEncoding(config(npos_max=5))  # small, so long rows reach the clamp
    torch.manual_seed(0)
    with torch.no_grad():
        pe.pos_emb.normal_()
    query, key = torch.randn(1, 4, 3, 8) * 2, torch.randn(1, 4, 7, 8) * 2
    # Three queries at the end of seven keys (a cache of 4), one key masked out as padding, plus causality.
    visible = torch.ones(3, 7, dtype=torch.bool).tril(4)
    visible[:, 1] = False
    bias = pe.content_bias(query, key, None, 1, visible[None, None])
    assert bias.shape == (1, 4, 3, 7)
    for h in range(4):
        expected = cope_by_hand(query[0, h], key[0, h], pe.pos_emb[1], visible.tolist(), npos_max=5)
        torch.testing.assert_close(bias[0, h], torch.tensor(expected), atol=1e-4, rtol=1e-4)


def test_with_every_gate_open_positions_count_tokens():
    """Huge logits open every gate: p_ij = i - j + 1, so an embedding table that is the position itself along one
    channel gives back the token distance (plus one) for a query that is one along that channel."""
    pe = CoPEPositionEncoding(config())
    with torch.no_grad():
        pe.pos_emb.zero_()
        pe.pos_emb[0, 0] = torch.arange(64.0)
    query = torch.zeros(1, 4, 6, 8)
    query[..., 0] = 1.0
    key = torch.zeros(1, 4, 6, 8)
    key[..., 0] = 1000.0  # q . k = 1000: sigmoid = 1
    visible = torch.ones(6, 6, dtype=torch.bool).tril()[None, None]
    bias = pe.content_bias(query, key, None, 0, visible)[0, 0]
    for i in range(6):
        for j in range(i + 1):
            assert math.isclose(bias[i, j].item(), i - j + 1, abs_tol=1e-4)


def test_a_fresh_model_starts_without_positions():
    """The embeddings start at zero (the paper's code): the model is then exactly NoPE with the same weights."""
    torch.manual_seed(0)
    cope = hfgpt.HFGPTForCausalLM(config()).eval()
    assert not cope.transformer.position_encoding.pos_emb.any()
    nope = hfgpt.HFGPTForCausalLM(
        hfgpt.HFGPTConfig.from_preset("tiny", vocab_size=50, position_encoding="none")
    )
    nope.load_state_dict(cope.state_dict(), strict=False)
    ids = torch.randint(0, 50, (2, 12))
    torch.testing.assert_close(cope(ids).logits, nope.eval()(ids).logits, atol=1e-6, rtol=1e-6)


def test_loss_falls_and_each_layers_embeddings_are_trained():
    torch.manual_seed(0)
    model = hfgpt.HFGPTForCausalLM._from_config(copy.deepcopy(config()), attn_implementation="sdpa").train()
    table = model.transformer.position_encoding.pos_emb

    def every_layer_has_gradients():
        assert all(table.grad[layer].abs().sum() > 0 for layer in range(model.config.n_layers))

    data = torch.arange(40).remainder(7)[None].repeat(4, 1)
    losses = train_steps(model, data, steps=30, after_backward=every_layer_has_gradients)
    assert losses[-1] < 0.5 * losses[0]
