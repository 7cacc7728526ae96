"""The newer positional strategies and attention options through the whole model: KV caches (dynamic, static,
sliding), packed documents, eager and sdpa, full-graph compilation and reloads in a fresh process through
`trust_remote_code`; per-layer schedules, sliding windows and randomized positions against references built
here; the per-layer content hook."""

from __future__ import annotations

import copy
import json
import math
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from transformers import DataCollatorWithFlattening
from transformers.cache_utils import StaticCache

from hfgpt import HFGPTConfig, HFGPTForCausalLM, PositionEncoding
from hfgpt.errors import ConfigError, ModelInputError, UnknownStrategyError
from hfgpt.position_encoding import random_positions

# name -> config fields. kerple, fire and cope come from plugins/hfgpt-*; schedules mix a rotary, a score-bias
# and the content-bias strategy in one model.
CASES = {
    "p-rope": dict(
        position_encoding="p-rope", position_encoding_kwargs={"p": 0.5, "partial_rotary_factor": 0.5}
    ),
    "kerple": dict(position_encoding="kerple"),
    "fire": dict(position_encoding="fire", position_encoding_kwargs={"mlp_width": 8, "init_L": 8.0}),
    "cope": dict(position_encoding="cope", position_encoding_kwargs={"npos_max": 12}),
    "nope-every": dict(position_encoding="rope", nope_every=2),
    "schedule": dict(
        position_encoding="rope",
        n_layers=4,
        position_encoding_layers=[
            None,
            "alibi",
            {"position_encoding": "cope", "position_encoding_kwargs": {}},
            "none",
        ],
    ),
    "sliding-rope": dict(position_encoding="rope", sliding_window=5),
    "sliding-cope": dict(position_encoding="cope", sliding_window=4),
    "random-positions": dict(position_encoding="rope", random_positions_max=512),
}
VOCAB = 80


def make(name_or_fields: str | dict, attn: str = "sdpa", seed: int = 0, **extra) -> HFGPTForCausalLM:
    fields = CASES[name_or_fields] if isinstance(name_or_fields, str) else name_or_fields
    torch.manual_seed(seed)
    config = HFGPTConfig.from_preset("tiny", vocab_size=VOCAB, drop_rate=0.0, **{**fields, **extra})
    model = HFGPTForCausalLM._from_config(copy.deepcopy(config), attn_implementation=attn).eval()
    with torch.no_grad():  # learned position parameters away from their start (CoPE's start at zero)
        for encoding in model.transformer.position_encodings:
            for param in encoding.parameters():
                param.normal_(std=0.5)
    return model


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("name", list(CASES))
def test_cached_static_and_uncached_generation_agree(name, attn):
    model = make(name, attn)
    prompt = torch.randint(0, VOCAB, (2, 7))
    mask = torch.ones_like(prompt)
    mask[1, :2] = 0  # left padding: positions from the mask, slots shifted
    kwargs = dict(attention_mask=mask, max_new_tokens=14, do_sample=False)  # 21 tokens: past every window
    cached = model.generate(prompt, **kwargs)
    assert torch.equal(cached, model.generate(prompt, use_cache=False, **kwargs))
    assert torch.equal(cached, model.generate(prompt, cache_implementation="static", **kwargs))


def per_token_losses(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cross_entropy(
        logits[:, :-1].transpose(1, 2), labels[:, 1:], ignore_index=-100, reduction="none"
    )


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("name", list(CASES))
def test_packed_documents_give_the_losses_of_padded_ones(name, attn):
    model = make(name, attn)
    documents = [torch.randint(0, VOCAB, (n,)).tolist() for n in (5, 11, 3, 8)]
    longest = max(map(len, documents))
    ids = torch.zeros(len(documents), longest, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, doc in enumerate(documents):
        ids[row, : len(doc)], mask[row, : len(doc)] = torch.tensor(doc), 1
    padded = per_token_losses(model(ids, attention_mask=mask).logits, ids.masked_fill(mask == 0, -100))
    expected = torch.cat([padded[row, : len(doc) - 1] for row, doc in enumerate(documents)])

    batch = DataCollatorWithFlattening(return_position_ids=True, separator_id=-100)(
        [{"input_ids": doc} for doc in documents], return_tensors="pt"
    )
    out = model(batch["input_ids"], position_ids=batch["position_ids"])
    packed = per_token_losses(out.logits, batch["labels"])[0][batch["labels"][0, 1:] != -100]
    torch.testing.assert_close(packed, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", list(CASES))
def test_eager_and_sdpa_agree(name):
    eager, sdpa = make(name, "eager"), make(name, "sdpa")
    ids = torch.randint(0, VOCAB, (2, 80))  # longer than context_length (64) and than every window
    torch.testing.assert_close(eager(ids).logits, sdpa(ids).logits, atol=1e-5, rtol=1e-5)


# Each compilation takes seconds: the cases that cover every hook (rotary, score bias, content bias, several
# strategies in one model, the sliding masks and cache) run always, the others in the slow pass.
COMPILED = [
    pytest.param(name, marks=() if name in ("schedule", "cope", "sliding-rope") else pytest.mark.slow)
    for name in CASES
]


@pytest.mark.parametrize("name", COMPILED)
def test_forward_compiles_as_one_graph_for_prefill_and_static_cache_steps(name):
    """fullgraph=True fails on any graph break; every case compiles (CoPE's gather and cumsum included)."""
    torch._dynamo.reset()
    model = make(name)
    compiled = torch.compile(model.forward, fullgraph=True, backend="eager")
    ids = torch.randint(0, VOCAB, (2, 6))
    torch.testing.assert_close(compiled(ids).logits, model(ids).logits)
    cache, expected_cache = (StaticCache(config=model.config, max_cache_len=16) for _ in range(2))
    torch.testing.assert_close(compiled(ids, cache=cache).logits, model(ids, cache=expected_cache).logits)
    step = torch.randint(0, VOCAB, (2, 1))
    torch.testing.assert_close(compiled(step, cache=cache).logits, model(step, cache=expected_cache).logits)


def test_randomized_positions_compile_as_one_graph_in_training():
    torch._dynamo.reset()
    model = make("random-positions").train()
    compiled = torch.compile(model.forward, fullgraph=True, backend="eager")
    ids = torch.randint(0, VOCAB, (2, 16))
    torch.manual_seed(3)
    got = compiled(ids, labels=ids).loss
    torch.manual_seed(3)
    torch.testing.assert_close(got, model(ids, labels=ids).loss)


CHILD = textwrap.dedent(
    """
    import json, sys
    import torch
    from transformers import AutoModelForCausalLM
    assert not [m for m in sys.modules if m.startswith("hfgpt")], "this process must not import hfgpt itself"
    results = {}
    for directory in sys.argv[1:]:
        model = AutoModelForCausalLM.from_pretrained(directory, trust_remote_code=True).eval()
        ids = torch.load(directory + "/ids.pt")
        with torch.no_grad():
            torch.save(model(ids).logits, directory + "/child-logits.pt")
        prompt = ids[:, :5]
        cached = model.generate(prompt, max_new_tokens=12, do_sample=False)
        uncached = model.generate(prompt, max_new_tokens=12, do_sample=False, use_cache=False)
        config = model.config.to_dict()
        results[directory] = {
            "cached": cached.tolist(), "uncached": uncached.tolist(),
            "fields": {k: config.get(k) for k in json.loads(sys.stdin.readline())},
        }
    print(json.dumps(results))
    """
)
SAVED_FIELDS = [
    "position_encoding",
    "position_encoding_kwargs",
    "position_encoding_layers",
    "nope_every",
    "sliding_window",
    "random_positions_max",
    "n_layers",
]


def test_every_case_reloads_in_a_fresh_process_through_trust_remote_code(tmp_path):
    saved = {}
    for name in CASES:
        directory = tmp_path / name
        model = make(name)
        model.save_pretrained(directory)
        ids = torch.randint(0, VOCAB, (2, 30))
        torch.save(ids, directory / "ids.pt")
        with torch.no_grad():
            logits = model(ids).logits
        greedy = model.generate(ids[:, :5], max_new_tokens=12, do_sample=False).tolist()
        saved[str(directory)] = (
            name,
            logits,
            greedy,
            {k: model.config.to_dict().get(k) for k in SAVED_FIELDS},
        )
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "HF_MODULES_CACHE": str(tmp_path / "m"),
    }
    done = subprocess.run(
        [sys.executable, "-c", CHILD, *saved],
        input="\n".join([json.dumps(SAVED_FIELDS)] * len(saved)) + "\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    for directory, (name, logits, greedy, fields) in saved.items():
        result = results[directory]
        assert result["fields"] == fields, name  # the saved config round-trips, schedule and options included
        torch.testing.assert_close(torch.load(f"{directory}/child-logits.pt"), logits, atol=0, rtol=0)
        assert result["cached"] == result["uncached"] == greedy, name


# --- per-layer schedules -------------------------------------------------------------------------------------


def rope_by_hand(x: torch.Tensor, positions: list[int], theta: float = 10000.0) -> torch.Tensor:
    """RoPE in Llama's half-split layout for one head (seq, d): pair (c, c + d/2) turned by pos * theta^(-2c/d)."""
    seq, d = x.shape
    out = x.clone()
    for s, pos in enumerate(positions):
        for c in range(d // 2):
            angle = pos * theta ** (-2 * c / d)
            a, b = x[s, c].item(), x[s, c + d // 2].item()
            out[s, c] = a * math.cos(angle) - b * math.sin(angle)
            out[s, c + d // 2] = b * math.cos(angle) + a * math.sin(angle)
    return out


def test_a_schedule_runs_each_layers_own_strategy_and_embeds_absolute_positions_once():
    """learned (the model's own) + rope + alibi, one per layer, against a forward written here: the learned
    table is added once to the token embeddings, layer 0 has no other position, layer 1 rotates its queries and
    keys, layer 2 adds ALiBi's bias."""
    fields = dict(position_encoding="learned", n_layers=3, position_encoding_layers=[None, "rope", "alibi"])
    model = make(fields)
    assert model.config.layer_strategies() == [("learned", {}), ("rope", {}), ("alibi", {})]
    t = model.transformer
    ids = torch.randint(0, VOCAB, (1, 9))
    seq, heads, d = 9, model.config.n_heads, model.config.head_dim
    slopes = [2 ** (-8 * (h + 1) / heads) for h in range(heads)]  # the ALiBi paper's slopes for 4 heads
    with torch.no_grad():
        hidden = t.wte(ids)[0] + t.position_encoding.wpe.weight[:seq]
        for layer, block in enumerate(t.h):
            x = block.ln_1(hidden)
            q, k, v = block.attn.qkv(x).view(seq, 3, heads, d).unbind(1)
            outputs = []
            for h in range(heads):
                qh, kh = q[:, h], k[:, h]
                if layer == 1:
                    qh, kh = rope_by_hand(qh, list(range(seq))), rope_by_hand(kh, list(range(seq)))
                scores = torch.empty(seq, seq)
                for i in range(seq):
                    for j in range(seq):
                        scores[i, j] = (qh[i] @ kh[j]) / math.sqrt(d) + (
                            slopes[h] * (j - i) if layer == 2 else 0
                        )
                        if j > i:
                            scores[i, j] = -math.inf
                outputs.append(torch.softmax(scores, -1) @ v[:, h])
            hidden = hidden + block.attn.out_proj(torch.cat(outputs, -1))
            hidden = hidden + block.mlp(block.ln_2(hidden))
        expected = model.lm_head(t.ln_f(hidden))
        torch.testing.assert_close(model(ids).logits[0], expected, atol=1e-4, rtol=1e-4)


def test_a_uniform_schedule_is_the_plain_model():
    plain = make(dict(position_encoding="alibi"))
    scheduled = make(dict(position_encoding="alibi", position_encoding_layers=["alibi", None]))
    assert scheduled.state_dict().keys() == plain.state_dict().keys()
    assert len(scheduled.transformer.position_encodings) == 1  # one module, shared
    ids = torch.randint(0, VOCAB, (2, 20))
    torch.testing.assert_close(scheduled(ids).logits, plain(ids).logits, atol=0, rtol=0)


def test_nope_every_leaves_every_nth_layer_without_rope_like_smollm3():
    model = make(dict(position_encoding="rope", n_layers=8, nope_every=4))
    assert [name for name, _ in model.config.layer_strategies()] == ["rope"] * 3 + ["none"] + ["rope"] * 3 + [
        "none"
    ]
    rope, none = model.transformer.position_encodings
    rotated_in = []
    rotate = rope.rotate
    rope.rotate = lambda q, k, prepared: (rotated_in.append(len(rotated_in)), rotate(q, k, prepared))[1]
    with torch.no_grad():
        model(torch.randint(0, VOCAB, (1, 5)))
    assert len(rotated_in) == 6 and type(none).__name__ == "NoPositionEncoding"


def test_strategies_with_different_options_are_separate_modules_and_saved_as_such(tmp_path):
    fields = dict(
        position_encoding="fire",
        position_encoding_kwargs={"mlp_width": 4},
        position_encoding_layers=[
            None,
            {"position_encoding": "fire", "position_encoding_kwargs": {"mlp_width": 6}},
        ],
    )
    model = make(fields)
    widths = [encoding.mlp[0].out_features for encoding in model.transformer.position_encodings]
    assert widths == [4, 6]
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["position_encoding_layers"] == fields["position_encoding_layers"]
    loaded = HFGPTForCausalLM.from_pretrained(tmp_path).eval()
    ids = torch.randint(0, VOCAB, (1, 12))
    torch.testing.assert_close(loaded(ids).logits, model(ids).logits, atol=0, rtol=0)


@pytest.mark.parametrize(
    ("fields", "error", "message"),
    [
        (dict(position_encoding_layers=["rope", "alibi"]), ConfigError, "position_encoding='learned' is the strategy of no layer"),
        (dict(position_encoding="learned", nope_every=2), ConfigError, "learned adds its positions once .* would change nothing"),
        (dict(position_encoding_layers=[None, "nonesuch"]), UnknownStrategyError, "unknown position-encoding strategy 'nonesuch'"),
        (dict(position_encoding_layers=[None]), ConfigError, r"one strategy per layer \(2\)"),
        (dict(position_encoding="rope", nope_every=2, position_encoding_layers=[None, None]), ConfigError, "either nope_every"),
        (dict(position_encoding="rope", nope_every=3), ConfigError, "nope_every=3 with 2 layers"),
        (dict(position_encoding_layers=[None, {"position_encoding": "rope", "kwargs": {}}]), ConfigError, "is null, a strategy name"),
        (dict(position_encoding="rope", position_encoding_layers=[None, {"position_encoding": "alibi", "position_encoding_kwargs": {"slope": 1}}]), ConfigError, r"unknown alibi option\(s\) \['slope'\]"),
        (dict(sliding_window=0), ConfigError, "sliding_window must be a positive integer"),
        (dict(random_positions_max=65), ConfigError, "random_positions_max=65 .* encode only 64 positions"),
    ],
)  # fmt: skip
def test_schedules_and_options_that_cannot_work_are_refused_before_any_weight(fields, error, message):
    with pytest.raises(error, match=message):
        HFGPTForCausalLM(HFGPTConfig.from_preset("tiny", vocab_size=VOCAB, **fields))


def test_the_most_limited_strategy_of_a_schedule_bounds_the_length():
    from hfgpt.position_encoding import max_positions

    config = HFGPTConfig.from_preset(
        "tiny", position_encoding="rope", position_encoding_layers=[None, "learned"]
    )
    assert max_positions(config) == 64
    with pytest.raises(ModelInputError, match="position_encoding='learned' knows only 64 positions"):
        HFGPTForCausalLM(config)(torch.randint(0, 100, (1, 65)))


# --- sliding window ------------------------------------------------------------------------------------------


def window_mask(seq: int, window: int) -> torch.Tensor:
    """By hand: query i sees keys j with i - window < j <= i."""
    visible = torch.zeros(seq, seq, dtype=torch.bool)
    for i in range(seq):
        for j in range(seq):
            visible[i, j] = i - window < j <= i
    return visible[None, None]


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("strategy", ["rope", "alibi", "cope"])
def test_sliding_window_equals_the_full_model_given_the_window_mask(strategy, attn):
    windowed = make(dict(position_encoding=strategy, sliding_window=6), attn)
    full = make(dict(position_encoding=strategy), attn)
    full.load_state_dict(windowed.state_dict())
    ids = torch.randint(0, VOCAB, (2, 20))
    expected = full(ids, attention_mask=window_mask(20, 6).expand(2, 1, 20, 20)).logits
    torch.testing.assert_close(windowed(ids).logits, expected, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(windowed(ids).logits, full(ids).logits, atol=1e-3)


def test_sliding_window_attention_weights_vanish_outside_the_window():
    model = make("sliding-rope", "eager")
    weights = model(torch.randint(0, VOCAB, (1, 12)), output_attentions=True).attentions[0][
        0
    ]  # (heads, q, kv)
    for i in range(12):
        for j in range(12):
            assert (weights[:, i, j] > 0).all() if i - 5 < j <= i else (weights[:, i, j] == 0).all()


def test_a_window_as_long_as_the_input_changes_nothing():
    windowed, full = (
        make(dict(position_encoding="rope", sliding_window=30)),
        make(dict(position_encoding="rope")),
    )
    ids = torch.randint(0, VOCAB, (2, 30))
    torch.testing.assert_close(windowed(ids).logits, full(ids).logits, atol=0, rtol=0)


def test_generation_keeps_only_the_window_in_the_cache():
    model = make("sliding-rope")
    out = model.generate(
        torch.randint(0, VOCAB, (1, 9)), max_new_tokens=8, do_sample=False, return_dict_in_generate=True
    )
    cache = out.past_key_values
    assert all(cache.is_sliding) and cache.get_seq_length() == 16
    assert cache.layers[0].keys.shape[-2] == 4  # window 5: the last 4 keys are all the next token needs


def test_a_sliding_window_does_not_lift_a_learned_table_s_limit():
    model = make(dict(position_encoding="learned", sliding_window=8))
    with pytest.raises(ModelInputError, match="knows only 64 positions"):
        model.generate(torch.randint(0, VOCAB, (1, 60)), max_new_tokens=10, do_sample=False)


# --- randomized positions ------------------------------------------------------------------------------------


def test_randomized_positions_are_sorted_distinct_samples_per_document():
    torch.manual_seed(0)
    position_ids = torch.tensor([[0, 1, 2, 3, 0, 1, 2, 0, 1, 2, 3, 4]])  # three packed documents
    drawn = random_positions(position_ids, batch=3, maximum=40)
    assert drawn.shape == (3, 12) and drawn.min() >= 0 and drawn.max() < 40
    for row in drawn.tolist():
        for start, end in ((0, 4), (4, 7), (7, 12)):
            document = row[start:end]
            assert document == sorted(set(document))  # strictly increasing: distinct and sorted
    assert len({tuple(row) for row in drawn.tolist()}) == 3  # every row its own sample
    # When the range is exactly the document's length, the only sorted sample is 0, 1, ..., n - 1.
    assert random_positions(torch.arange(7)[None], batch=2, maximum=7).tolist() == [list(range(7))] * 2


def test_randomized_positions_are_a_uniform_sample():
    """The k-th smallest of n distinct values drawn uniformly from {0..M-1} has mean (k+1)(M+1)/(n+1) - 1, and
    every value is drawn with probability n/M (Ruoss et al.'s sampling without replacement)."""
    torch.manual_seed(0)
    n, maximum, draws = 4, 20, 20000
    drawn = random_positions(torch.arange(n)[None], batch=draws, maximum=maximum).double()
    for k in range(n):
        expected = (k + 1) * (maximum + 1) / (n + 1) - 1
        standard_error = drawn[:, k].std().item() / math.sqrt(draws)
        assert abs(drawn[:, k].mean().item() - expected) < 5 * standard_error
    frequency = torch.bincount(drawn.long().flatten(), minlength=maximum) / draws
    assert torch.allclose(frequency, torch.full((maximum,), n / maximum, dtype=frequency.dtype), atol=0.02)


@pytest.mark.parametrize("strategy", ["learned", "sinusoidal", "rope"])
def test_randomized_positions_reach_the_strategy_in_training_only(strategy):
    fields = dict(position_encoding=strategy, random_positions_max=64)
    model, plain = make(fields), make(dict(position_encoding=strategy))
    plain.load_state_dict(model.state_dict())
    encoding = model.transformer.position_encoding
    seen = []
    for hook in ("embed", "prepare"):
        original = getattr(encoding, hook)
        setattr(
            encoding, hook, lambda *args, _f=original, _h=hook: (seen.append((_h, args[-1])), _f(*args))[1]
        )
    ids = torch.randint(0, VOCAB, (2, 10))
    torch.testing.assert_close(model(ids).logits, plain(ids).logits, atol=0, rtol=0)  # eval: plain positions
    assert all(torch.equal(positions, torch.arange(10)[None]) for _, positions in seen)
    seen.clear()
    model.train()
    loss = model(ids, labels=ids).loss
    loss.backward()
    (_, embedded), (_, prepared) = seen
    assert torch.equal(embedded, prepared) and embedded.shape == (2, 10)  # one draw for every hook
    assert (
        (embedded.diff(dim=-1) > 0).all()
        and embedded.max() < 64
        and not torch.equal(embedded[0], torch.arange(10))
    )


def test_randomized_positions_keep_packed_documents_apart():
    model = make(dict(position_encoding="rope", random_positions_max=100)).train()
    documents = torch.randint(0, VOCAB, (1, 12))
    changed = documents.clone()
    changed[0, :5] = (changed[0, :5] + 1) % VOCAB  # only the first document differs
    positions = torch.tensor([[0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 5, 6]])
    torch.manual_seed(5)
    first = model(documents, position_ids=positions).logits
    torch.manual_seed(5)
    second = model(changed, position_ids=positions).logits  # the same draw
    torch.testing.assert_close(first[0, 5:], second[0, 5:], atol=1e-6, rtol=1e-6)
    assert not torch.allclose(first[0, :5], second[0, :5])


def test_a_window_longer_than_the_random_range_is_refused_in_training():
    model = make(dict(position_encoding="rope", random_positions_max=8)).train()
    with pytest.raises(ModelInputError, match="cannot take distinct random positions from \\[0, 8\\)"):
        model(torch.randint(0, VOCAB, (1, 9)))
    model.eval()(torch.randint(0, VOCAB, (1, 9)))  # evaluation uses plain positions: any length


# --- the content hook ----------------------------------------------------------------------------------------


def test_overriding_content_bias_requires_declaring_it():
    with pytest.raises(TypeError, match="declare `content_score_bias = True`"):

        class Undeclared(PositionEncoding):
            def content_bias(self, query, key, prepared, layer_idx, visible):
                return None


def test_the_content_hook_sees_each_layer_s_queries_cached_keys_and_the_mask(monkeypatch):
    from hfgpt import hookimpl, plugins

    calls = []

    class Recorder(PositionEncoding):
        content_score_bias = True

        def content_bias(self, query, key, prepared, layer_idx, visible):
            calls.append((layer_idx, query.shape[-2], key.shape[-2], visible[0, 0].clone()))
            return torch.zeros(())

    class Plugin:
        @hookimpl
        def register_position_encodings(self, register):
            register("recorder", Recorder)

    plugins.load_plugins()
    plugins.pm.register(Plugin(), name="recorder-plugin")
    try:
        model = make(dict(position_encoding="recorder", n_layers=3, sliding_window=3))
        ids = torch.randint(0, VOCAB, (1, 5))
        out = model(ids, use_cache=True)
        model(torch.randint(0, VOCAB, (1, 1)), cache=out.cache)
    finally:
        plugins.pm.unregister(name="recorder-plugin")
    assert [call[:3] for call in calls] == [(0, 5, 5), (1, 5, 5), (2, 5, 5), (0, 1, 3), (1, 1, 3), (2, 1, 3)]
    torch.testing.assert_close(calls[0][3], window_mask(5, 3)[0, 0])  # causal and the window, as booleans
    assert calls[-1][3].all()  # the cache kept exactly the keys the new token may see


def test_strategies_without_the_hook_never_reach_it():
    for encoding_class in (PositionEncoding, type(make("kerple").transformer.position_encoding)):
        assert not encoding_class.content_score_bias
