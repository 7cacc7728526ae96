"""Positional strategies: each against an independent formula, and each one trains and generates."""

import math

import pytest
import torch

from hfgpt import HFGPTConfig, HFGPTForCausalLM, PositionEncoding
from hfgpt.data.sources import default_corpus_path
from hfgpt.plugins import get_position_encoding
from hfgpt.position_encoding import RotaryPositionEncoding


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
    rotated, _ = pe.rotate(q, q.clone(), pe.prepare(torch.arange(3)[None]))
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


def test_p_rope_keeps_the_highest_frequencies_on_the_rotary_channels_only():
    """Barbero et al. 2024: p-RoPE keeps the fraction p of the frequencies, from the highest; partial rotary
    dimensions (GPT-NeoX) rotate the first partial_rotary_factor * head_dim channels with frequencies
    theta^(-2i/rotary_dim) and pass the rest through. Written out per channel for head_dim 16, rotary_dim 12,
    p = 0.5: floor(0.5 * 6) = 3 of the 6 frequencies kept."""
    cfg = HFGPTConfig.from_preset(
        "tiny",
        vocab_size=60,
        emb_dim=64,
        position_encoding="p-rope",
        position_encoding_kwargs={"p": 0.5, "partial_rotary_factor": 0.75, "theta": 500.0},
    )
    pe = get_position_encoding("p-rope")(cfg)
    hd, rd = 16, 12
    q = torch.randn(1, 1, 4, hd)
    rotated, _ = pe.rotate(q, q.clone(), pe.prepare(torch.tensor([[0, 3, 7, 40]])))
    for s, pos in enumerate((0, 3, 7, 40)):
        for i in range(rd // 2):
            angle = pos * 500.0 ** (-2 * i / rd) if i < 3 else 0.0
            a, b = q[0, 0, s, i].item(), q[0, 0, s, i + rd // 2].item()
            assert math.isclose(
                rotated[0, 0, s, i].item(), a * math.cos(angle) - b * math.sin(angle), abs_tol=1e-5
            )
            assert math.isclose(
                rotated[0, 0, s, i + rd // 2].item(), b * math.cos(angle) + a * math.sin(angle), abs_tol=1e-5
            )
        for c in range(rd, hd):
            assert rotated[0, 0, s, c].item() == q[0, 0, s, c].item()


def test_p_rope_at_its_ends_is_rope_and_nope():
    q, k, pos = torch.randn(2, 4, 5, 8), torch.randn(2, 4, 5, 8), torch.arange(5)[None].repeat(2, 1) * 13
    rope = get_position_encoding("rope")(config(position_encoding="rope"))
    every = get_position_encoding("p-rope")(
        config(position_encoding="p-rope", position_encoding_kwargs={"p": 1.0})
    )
    for got, expected in zip(
        every.rotate(q, k, every.prepare(pos)), rope.rotate(q, k, rope.prepare(pos)), strict=True
    ):
        torch.testing.assert_close(got, expected, atol=0, rtol=0)
    none = get_position_encoding("p-rope")(
        config(position_encoding="p-rope", position_encoding_kwargs={"p": 0.0})
    )
    for got, expected in zip(none.rotate(q, k, none.prepare(pos)), (q, k), strict=True):
        torch.testing.assert_close(got, expected, atol=0, rtol=0)


def test_rope_scores_depend_only_on_relative_distance():
    pe = get_position_encoding("rope")(config(position_encoding="rope"))
    q, k = torch.randn(1, 1, 1, 8), torch.randn(1, 1, 1, 8)
    scores = []
    for offset in (0, 7, 30):
        rq, _ = pe.rotate(q, q, pe.prepare(torch.tensor([[offset + 5]])))
        _, rk = pe.rotate(k, k, pe.prepare(torch.tensor([[offset + 2]])))
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
        score_bias = True

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


def test_sinusoidal_scales_the_tokens_by_sqrt_d_model():
    # Vaswani et al. 2017, section 3.4: token embeddings are multiplied by sqrt(d_model), then sinusoids added.
    pe = get_position_encoding("sinusoidal")(config(position_encoding="sinusoidal"))
    x, positions = torch.randn(2, 5, 32), torch.arange(5)[None]
    sinusoids = pe.embed(torch.zeros_like(x), positions)
    torch.testing.assert_close(pe.embed(x, positions) - sinusoids, x * math.sqrt(32))


@pytest.mark.parametrize(("embed_scale", "drowned"), [(None, False), (1.0, True)])
def test_sinusoids_do_not_drown_freshly_initialised_token_embeddings(embed_scale, drowned):
    """The regression behind the fix: at init (std 0.02) the unscaled sum was ~97% position, and sinusoidal
    trained far worse than learned (val loss 2.86 vs 2.12 on a byte-level stdlib run; scaled: 2.25)."""
    kwargs = {} if embed_scale is None else {"embed_scale": embed_scale}
    cfg = HFGPTConfig.from_preset(
        "small-cpu", vocab_size=100, position_encoding="sinusoidal", position_encoding_kwargs=kwargs
    )
    torch.manual_seed(0)
    model = HFGPTForCausalLM(cfg)
    tokens = model.transformer.wte(torch.arange(100)[None, :])  # as initialised (std 0.02)
    pe, positions = model.transformer.position_encoding, torch.arange(100)[None]
    sinusoids = pe.embed(torch.zeros_like(tokens), positions)
    token_part = pe.embed(tokens, positions) - sinusoids
    ratio = (token_part.norm() / sinusoids.norm()).item()  # 0.02 * sqrt(256) / sqrt(1/2) ~ 0.45 when scaled
    assert (ratio < 0.05) if drowned else (ratio > 0.3)


def rope_config(**kwargs):
    return HFGPTConfig.from_preset(
        "tiny",
        vocab_size=60,
        emb_dim=128,
        n_heads=2,
        drop_rate=0.0,
        position_encoding="rope",
        position_encoding_kwargs=kwargs,
    )


def plain_inv_freq(d=64, theta=10000.0):
    return torch.tensor([theta ** (-2 * i / d) for i in range(d // 2)], dtype=torch.float64)


def test_linear_scaling_divides_positions_by_the_factor():
    # Chen et al. 2023 (position interpolation): position m is encoded as m / factor.
    pe = get_position_encoding("rope")(rope_config(scaling="linear", factor=4.0))
    torch.testing.assert_close(pe.inv_freq.double(), plain_inv_freq() / 4, rtol=1e-6, atol=0)
    plain = get_position_encoding("rope")(rope_config())
    q = torch.randn(1, 2, 3, 64)
    scaled, _ = pe.rotate(q, q, pe.prepare(torch.tensor([[8, 20, 400]])))
    reference, _ = plain.rotate(q, q, plain.prepare(torch.tensor([[2, 5, 100]])))
    torch.testing.assert_close(scaled, reference, atol=1e-4, rtol=1e-4)


def test_ntk_scaling_raises_the_base():
    # NTK-aware: base' = base * factor^(d / (d - 2)); then theta_i = base'^(-2i/d). d = head_dim = 64.
    pe = get_position_encoding("rope")(rope_config(scaling="ntk", factor=4.0))
    torch.testing.assert_close(
        pe.inv_freq.double(), plain_inv_freq(theta=10000.0 * 4 ** (64 / 62)), rtol=1e-6, atol=0
    )
    assert pe.inv_freq[0] == 1.0 and math.isclose(
        pe.inv_freq[-1].item() * 4, plain_inv_freq()[-1].item(), rel_tol=1e-4
    )


def test_yarn_frequencies_and_temperature_follow_the_paper():
    """Peng et al. 2023, NTK-by-parts: r_i = L / lambda_i turns of dimension i over the original context L
    (lambda_i = 2 pi / theta_i). r > beta_fast: kept; r < beta_slow: divided by the factor; in between a linear
    ramp over the dimension index between the dims where r = beta_fast and r = beta_slow, rounded outwards."""
    s, L, d = 4.0, 4096, 64
    pe = get_position_encoding("rope")(rope_config(scaling="yarn", factor=s, original_context_length=L))
    plain = plain_inv_freq()
    turns = L * plain / (2 * math.pi)
    got = pe.inv_freq.double()
    # Dimension where r = beta: d * ln(L / (2 pi beta)) / (2 ln theta): 10.47 for beta=32, 22.51 for beta=1.
    low = math.floor(d * math.log(L / (2 * math.pi * 32)) / (2 * math.log(10000)))
    high = math.ceil(d * math.log(L / (2 * math.pi * 1)) / (2 * math.log(10000)))
    assert (low, high) == (10, 23)
    for i in range(d // 2):
        gamma = min(max((i - low) / (high - low), 0.0), 1.0)  # 0: extrapolate (keep), 1: interpolate
        expected = (1 - gamma) * plain[i] + gamma * plain[i] / s
        assert math.isclose(got[i].item(), expected.item(), rel_tol=1e-6)
        if turns[i] > 32:
            assert math.isclose(got[i].item(), plain[i].item(), rel_tol=1e-6)
        if turns[i] < 1:
            assert math.isclose(got[i].item(), plain[i].item() / s, rel_tol=1e-6)
    # Temperature: sqrt(1/t) = 0.1 ln(s) + 1 multiplies q and k (position 0: no rotation), so q.k by its square.
    q, k = torch.randn(1, 2, 1, 64), torch.randn(1, 2, 1, 64)
    rq, rk = pe.rotate(q, k, pe.prepare(torch.zeros(1, 1, dtype=torch.long)))
    torch.testing.assert_close(rq, q * (0.1 * math.log(s) + 1))
    torch.testing.assert_close((rq * rk).sum(-1), (q * k).sum(-1) * (0.1 * math.log(s) + 1) ** 2)


@pytest.mark.parametrize("scaling", ["linear", "ntk", "yarn"])
def test_factor_one_is_plain_rope(scaling):
    pe = get_position_encoding("rope")(rope_config(scaling=scaling, factor=1.0))
    plain = get_position_encoding("rope")(rope_config())
    q, k, pos = torch.randn(2, 2, 5, 64), torch.randn(2, 2, 5, 64), torch.arange(5)[None].repeat(2, 1) * 37
    for got, expected in zip(
        pe.rotate(q, k, pe.prepare(pos)), plain.rotate(q, k, plain.prepare(pos)), strict=True
    ):
        torch.testing.assert_close(got, expected, atol=0, rtol=0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"scaling": "dynamic", "factor": 2.0},
            r"unknown rope scaling 'dynamic'; choose one of \['linear', 'ntk', 'yarn'\]",
        ),
        ({"scaling": "linear", "factor": 0.5}, r"factor must be a number >= 1.*got 0.5"),
        ({"scaling": "linear", "factor": "4"}, r"factor must be a number >= 1.*got '4'"),
        ({"factor": 4.0}, r"rope options \['factor'\] need a scaling method"),
        ({"scaling": "yarn", "factr": 4.0}, r"unknown rope option\(s\) \['factr'\]"),
        (
            {"scaling": "yarn", "factor": 2.0, "original_context_length": 0},
            "original_context_length must be a positive",
        ),
        ({"scaling": "yarn", "factor": 2.0, "beta_fast": 1, "beta_slow": 32}, "beta_fast > beta_slow > 0"),
    ],
)
def test_rope_scaling_options_are_validated(kwargs, message):
    from hfgpt.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        HFGPTForCausalLM(config(position_encoding="rope", position_encoding_kwargs=kwargs))


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        (
            "learned",
            {"scaling": "yarn"},
            r"unknown learned option\(s\) \['scaling'\].*learned takes no options",
        ),
        ("none", {"theta": 10.0}, r"unknown none option\(s\) \['theta'\]"),
        ("sinusoidal", {"theta": 10.0}, r"sinusoidal takes \['base', 'embed_scale'\]"),
        ("alibi", {"factor": 2.0}, r"unknown alibi option\(s\) \['factor'\]"),
        ("t5", {"buckets": 8}, r"t5 takes \['max_distance', 'num_buckets'\]"),
        ("p-rope", {"scaling": "yarn"}, r"p-rope takes \['p', 'partial_rotary_factor', 'theta'\]"),
        ("p-rope", {"p": 1.5}, r"p-rope p must be a number in \[0, 1\]"),
        ("p-rope", {"partial_rotary_factor": 0.1}, r"leaves no channel pair to rotate in a head of 8"),
        ("kerple", {"r1": 1.0}, r"kerple takes no options"),
        ("fire", {"c": 1.0}, r"fire takes \['eps', 'init_L', 'init_c', 'mlp_width'\]"),
        ("cope", {"npos_max": 1}, r"cope npos_max must be an integer >= 2"),
    ],
)
def test_an_option_a_strategy_does_not_take_is_refused(name, kwargs, message):
    """A misspelt or misplaced option (a rope scaling given to a learned model) must not be ignored."""
    from hfgpt.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        HFGPTForCausalLM(config(position_encoding=name, position_encoding_kwargs=kwargs))


# Every strategy, old and new, with the options that change its computation.
EVERY_STRATEGY = [
    ("learned", {}),
    ("sinusoidal", {}),
    ("rope", {}),
    ("rope", {"scaling": "linear", "factor": 4.0}),
    ("rope", {"scaling": "ntk", "factor": 4.0}),
    ("rope", {"scaling": "yarn", "factor": 4.0, "original_context_length": 16}),
    ("none", {}),
    ("alibi", {}),  # plugins/hfgpt-alibi
    ("t5", {"num_buckets": 8, "max_distance": 20}),  # plugins/hfgpt-t5bias
    ("p-rope", {"p": 0.5, "partial_rotary_factor": 0.5}),
    ("kerple", {}),  # plugins/hfgpt-kerple
    ("fire", {"mlp_width": 8}),  # plugins/hfgpt-fire
    ("cope", {"npos_max": 16}),  # plugins/hfgpt-cope
]
STRATEGY_IDS = [
    name + "-" + kw.get("scaling", "") if kw.get("scaling") else name for name, kw in EVERY_STRATEGY
]


def built(name, kwargs):
    torch.manual_seed(0)
    model = HFGPTForCausalLM(config(position_encoding=name, position_encoding_kwargs=kwargs)).eval()
    with torch.no_grad():  # tables away from their init, so a table that is not saved would show
        for param in model.transformer.position_encoding.parameters():
            param.normal_()
    return model


@pytest.mark.parametrize(("name", "kwargs"), EVERY_STRATEGY, ids=STRATEGY_IDS)
def test_every_strategy_generates_the_same_with_and_without_cache_and_after_reload(name, kwargs, tmp_path):
    model = built(name, kwargs)
    prompt = torch.randint(0, 60, (2, 6))
    cached = model.generate(prompt, max_new_tokens=30, do_sample=False)  # 36 tokens: past yarn's original 16
    assert torch.equal(cached, model.generate(prompt, max_new_tokens=30, do_sample=False, use_cache=False))
    model.save_pretrained(tmp_path)
    loaded = HFGPTForCausalLM.from_pretrained(tmp_path).eval()
    assert (loaded.config.position_encoding, loaded.config.position_encoding_kwargs) == (name, kwargs)
    torch.testing.assert_close(loaded(cached).logits, model(cached).logits, atol=0, rtol=0)


@pytest.mark.parametrize(("name", "kwargs"), EVERY_STRATEGY, ids=STRATEGY_IDS)
def test_every_strategy_runs_packed_documents_as_separate_ones(name, kwargs):
    model = built(name, kwargs)
    documents = [torch.randint(0, 60, (n,)) for n in (5, 9, 4)]
    packed = torch.cat(documents)[None]
    positions = torch.cat([torch.arange(len(doc)) for doc in documents])[None]
    logits = model(packed, position_ids=positions).logits[0]
    start = 0
    for doc in documents:
        alone = model(doc[None]).logits[0]
        torch.testing.assert_close(logits[start : start + len(doc)], alone, atol=1e-5, rtol=1e-5)
        start += len(doc)


def test_a_scaling_set_at_inference_time_changes_a_plain_rope_model(tmp_path):
    model = built("rope", {})
    model.save_pretrained(tmp_path)
    kwargs = {"scaling": "yarn", "factor": 4.0, "original_context_length": 16}
    stretched = HFGPTForCausalLM.from_pretrained(tmp_path, position_encoding_kwargs=kwargs).eval()
    assert stretched.config.position_encoding_kwargs == kwargs
    torch.testing.assert_close(
        stretched(torch.arange(40)[None]).logits, built("rope", kwargs)(torch.arange(40)[None]).logits
    )
    assert not torch.allclose(stretched(torch.arange(40)[None]).logits, model(torch.arange(40)[None]).logits)


def test_a_bias_strategy_that_does_not_declare_score_bias_still_gets_its_bias():
    """A plugin written before `score_bias` existed overrides only attention_bias: it is warned and still used."""
    with pytest.warns(FutureWarning, match="score_bias"):

        class Legacy(PositionEncoding):
            def attention_bias(self, query_positions, key_positions):
                return torch.zeros(1, 1, query_positions.shape[-1], key_positions.shape[-1])

    assert Legacy.score_bias and not PositionEncoding.score_bias and not RotaryPositionEncoding.score_bias


def test_rope_tables_are_computed_once_per_forward_for_every_layer():
    """`prepare` runs once per forward, whatever the depth; the layers rotate with what it returned."""
    config = HFGPTConfig.from_preset("tiny", n_layers=3, position_encoding="rope", vocab_size=50)
    model = HFGPTForCausalLM(config).eval()
    encoding = model.transformer.position_encoding
    calls = {"prepare": 0, "rotate": 0}
    prepare, rotate = encoding.prepare, encoding.rotate

    def counted(name, function):
        def wrapper(*args):
            calls[name] += 1
            return function(*args)

        return wrapper

    encoding.prepare, encoding.rotate = counted("prepare", prepare), counted("rotate", rotate)
    with torch.no_grad():
        model(torch.randint(0, 50, (2, 7)))
    assert calls == {"prepare": 1, "rotate": 3}


@pytest.mark.parametrize(
    "strategy, limit",
    [("learned", 64), ("rope", None), ("sinusoidal", None), ("none", None), ("p-rope", None), ("cope", None)],
)
def test_strategies_answer_for_their_length_from_the_config_alone(strategy, limit):
    from hfgpt.position_encoding import max_positions

    config = HFGPTConfig.from_preset("tiny", position_encoding=strategy)
    assert config.context_length == 64
    assert max_positions(config) == limit
    assert HFGPTForCausalLM(config).transformer.position_encoding.max_positions == limit
