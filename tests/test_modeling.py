"""HFGPT models: shapes, eager vs SDPA, KV cache, save/load, Auto classes, pipeline, classification, errors."""

import copy

import pytest
import torch
from transformers import AutoModel, AutoModelForCausalLM, AutoModelForSequenceClassification, pipeline

import hfgpt
from hfgpt import HFGPTConfig, HFGPTForCausalLM, HFGPTForSequenceClassification, HFGPTModel
from hfgpt.data.sources import default_corpus_path

STRATEGIES = ["learned", "sinusoidal", "rope", "none"]


def make(cls=HFGPTForCausalLM, attn="sdpa", **fields):
    torch.manual_seed(0)
    config = HFGPTConfig.from_preset("tiny", **{"vocab_size": 120, "drop_rate": 0.0, **fields})
    return cls._from_config(copy.deepcopy(config), attn_implementation=attn).eval()


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_eager_and_sdpa_agree(strategy):
    eager, sdpa = (
        make(attn="eager", position_encoding=strategy),
        make(attn="sdpa", position_encoding=strategy),
    )
    sdpa.load_state_dict(eager.state_dict())
    ids = torch.randint(0, 120, (3, 17))
    mask = torch.ones_like(ids)
    mask[0, :5] = 0  # left padding
    torch.testing.assert_close(eager(ids).logits, sdpa(ids).logits, atol=1e-5, rtol=1e-5)
    padded_eager, padded_sdpa = eager(ids, attention_mask=mask).logits, sdpa(ids, attention_mask=mask).logits
    torch.testing.assert_close(padded_eager[0, 5:], padded_sdpa[0, 5:], atol=1e-5, rtol=1e-5)


def test_eager_path_matches_a_hand_written_causal_attention():
    model = make(attn="eager", n_layers=1, position_encoding="none")
    block, x = model.transformer.h[0], torch.randn(2, 6, model.config.emb_dim)
    attention = block.attn
    q, k, v = attention.qkv(x).split(model.config.emb_dim, dim=-1)
    heads = lambda t: t.view(2, 6, 4, -1).transpose(1, 2)  # noqa: E731
    scores = heads(q) @ heads(k).transpose(-1, -2) / (model.config.head_dim**0.5)
    scores = scores.masked_fill(torch.triu(torch.ones(6, 6, dtype=torch.bool), 1), float("-inf"))
    expected = attention.out_proj((scores.softmax(-1) @ heads(v)).transpose(1, 2).reshape(2, 6, -1))
    got, weights = attention(
        x, positions=torch.arange(6)[None], position_encoding=model.transformer.position_encoding
    )
    torch.testing.assert_close(got, expected)
    assert torch.all(weights.triu(1) == 0) and torch.allclose(weights.sum(-1), torch.ones(2, 4, 6))


@pytest.mark.parametrize("n_layers", [3, 12])
def test_initialisation_follows_gpt2_scaled_residual_projections(n_layers):
    """GPT-2's scheme: weights N(0, 0.02), the projections into the residual stream N(0, 0.02/sqrt(2 n_layers))."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    ours = HFGPTForCausalLM(HFGPTConfig.from_preset("tiny", emb_dim=128, n_layers=n_layers)).transformer.h[-1]
    gpt2 = GPT2LMHeadModel(GPT2Config(n_embd=128, n_layer=n_layers, n_head=4, vocab_size=100)).transformer.h[
        -1
    ]
    pairs = {
        "attention output": (ours.attn.out_proj.weight, gpt2.attn.c_proj.weight),
        "MLP output": (ours.mlp.proj.weight, gpt2.mlp.c_proj.weight),
        "qkv": (ours.attn.qkv.weight, gpt2.attn.c_attn.weight),
        "MLP input": (ours.mlp.fc.weight, gpt2.mlp.c_fc.weight),
    }
    for name, (mine, reference) in pairs.items():
        assert mine.std().item() == pytest.approx(reference.std().item(), rel=0.03), name
    assert ours.attn.out_proj.weight.std().item() == pytest.approx(0.02 / (2 * n_layers) ** 0.5, rel=0.03)


def test_torch_initialisation_draws_as_the_layers_own_reset_parameters():
    """`initialization="torch"` (the book's GPTModel): every Linear and Embedding distributed as a fresh
    `nn.Linear`/`nn.Embedding` of its shape is; the reference layers are built by torch itself."""
    torch.manual_seed(0)
    config = HFGPTConfig.from_preset("tiny", emb_dim=128, initialization="torch", tie_word_embeddings=False)
    model = HFGPTForCausalLM(config)
    layers = [m for m in model.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Embedding))]
    assert len(layers) == 2 * 4 + 3  # per block qkv, out, fc, proj; wte, wpe, the untied head
    for layer in layers:
        if isinstance(layer, torch.nn.Embedding):
            reference = torch.nn.Embedding(layer.num_embeddings, layer.embedding_dim).weight
        else:
            reference = torch.nn.Linear(layer.in_features, layer.out_features).weight
            assert layer.weight.abs().max() <= 1 / layer.in_features**0.5  # U(-1/sqrt(fan_in), +)
        assert layer.weight.std().item() == pytest.approx(reference.std().item(), rel=0.05), layer
    assert model.lm_head.weight.data_ptr() != model.transformer.wte.weight.data_ptr()


def test_torch_initialised_weights_survive_loading(tmp_path):
    """The init is skipped for loaded weights (transformers' guarded init functions), untied head included."""
    model = HFGPTForCausalLM(
        HFGPTConfig.from_preset("tiny", initialization="torch", tie_word_embeddings=False)
    )
    model.save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    for (name, mine), (_, theirs) in zip(
        model.state_dict().items(), loaded.state_dict().items(), strict=True
    ):
        assert torch.equal(mine, theirs), name


def test_an_unknown_initialization_is_refused():
    from hfgpt.errors import ConfigError

    with pytest.raises(ConfigError, match="initialization must be one of gpt2, torch"):
        HFGPTConfig.from_preset("tiny", initialization="xavier")


def test_loss_is_shifted_cross_entropy_ignoring_minus_100():
    model = make()
    ids = torch.randint(0, 120, (2, 10))
    labels = ids.clone()
    labels[:, :3] = -100
    logits = model(ids).logits
    expected = torch.nn.functional.cross_entropy(
        logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten(), ignore_index=-100
    )
    torch.testing.assert_close(model(ids, labels=labels).loss, expected)


def test_weights_are_tied_and_stay_tied_after_loading(tmp_path):
    model = make()
    assert model.lm_head.weight.data_ptr() == model.transformer.wte.weight.data_ptr()
    model.save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert loaded.lm_head.weight.data_ptr() == loaded.transformer.wte.weight.data_ptr()


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_save_pretrained_roundtrip_gives_identical_logits(tmp_path, strategy):
    model = make(position_encoding=strategy)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert type(loaded) is HFGPTForCausalLM and loaded.config.position_encoding == strategy
    ids = torch.randint(0, 120, (2, 12))
    assert torch.equal(model(ids).logits, loaded(ids).logits)


def test_auto_classes_are_registered(tmp_path):
    make().save_pretrained(tmp_path)
    assert type(AutoModel.from_pretrained(tmp_path)) is HFGPTModel
    assert (
        type(AutoModelForSequenceClassification.from_pretrained(tmp_path)) is HFGPTForSequenceClassification
    )


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_greedy_generation_is_the_same_with_and_without_cache(strategy):
    model = make(position_encoding=strategy)
    prompt = torch.randint(0, 120, (2, 7))
    cached = model.generate(
        prompt, max_new_tokens=15, do_sample=False, attention_mask=torch.ones_like(prompt)
    )
    uncached = model.generate(
        prompt, max_new_tokens=15, do_sample=False, use_cache=False, attention_mask=torch.ones_like(prompt)
    )
    assert cached.shape == (2, 22) and torch.equal(cached, uncached)


def test_greedy_generation_matches_a_manual_argmax_loop():
    model = make(position_encoding="rope")
    ids = torch.randint(0, 120, (1, 5))
    manual = ids
    for _ in range(8):  # the book's generate_text_simple
        next_id = model(manual).logits[:, -1].argmax(-1, keepdim=True)
        manual = torch.cat([manual, next_id], dim=1)
    assert torch.equal(model.generate(ids, max_new_tokens=8, do_sample=False), manual)


def test_learned_positions_refuse_longer_inputs_and_others_accept_them():
    ids = torch.randint(0, 120, (1, 65))  # tiny preset: context_length 64
    with pytest.raises(
        ValueError, match=r"65 tokens long.*'learned' knows only 64 positions.*rope, alibi, none"
    ):
        make(position_encoding="learned")(ids)
    for strategy in ("rope", "none", "sinusoidal"):
        assert make(position_encoding=strategy)(ids).logits.shape == (1, 65, 120)


def test_bad_inputs_are_clear_errors():
    model = make()
    with pytest.raises(
        ValueError, match=r"token id 120 is outside the model's vocabulary \(vocab_size=120\)"
    ):
        model(torch.tensor([[1, 120]]))
    with pytest.raises(ValueError, match="input_ids is empty"):
        model(torch.zeros((1, 0), dtype=torch.long))


def test_checkpoint_naming_a_missing_strategy_names_it(tmp_path):
    make().save_pretrained(tmp_path)
    config_file = tmp_path / "config.json"
    config_file.write_text(config_file.read_text().replace('"learned"', '"xpos-2000"'))
    with pytest.raises(
        ValueError, match="unknown position-encoding strategy 'xpos-2000'.*A plugin may provide it"
    ):
        AutoModelForCausalLM.from_pretrained(tmp_path)


def test_sequence_classification_pools_the_last_non_pad_token():
    model = make(HFGPTForSequenceClassification, num_labels=3, pad_token_id=0)
    ids = torch.tensor([[5, 6, 7, 0, 0], [5, 6, 7, 8, 9], [0, 0, 5, 6, 7]])
    mask = (ids != 0).long()
    out = model(ids, attention_mask=mask)
    hidden = model.transformer(ids, attention_mask=mask).last_hidden_state
    last = torch.tensor([2, 4, 4])  # by hand: right padding, none, left padding
    expected = model.score(hidden[torch.arange(3), last])
    torch.testing.assert_close(out.logits, expected)
    labels = torch.tensor([0, 2, 1])
    torch.testing.assert_close(
        model(ids, attention_mask=mask, labels=labels).loss,
        torch.nn.functional.cross_entropy(expected, labels),
    )


def test_pipeline_text_generation_with_both_tokenizers(tmp_path):
    text = default_corpus_path().read_text()[:2000]
    for tokenizer in (hfgpt.RegexTokenizer.from_corpus(text), hfgpt.GPT2BPETokenizer()):
        model = make(vocab_size=len(tokenizer), eos_token_id=tokenizer.eos_token_id)
        model.save_pretrained(tmp_path / type(tokenizer).__name__)
        tokenizer.save_pretrained(tmp_path / type(tokenizer).__name__)
        generator = pipeline("text-generation", model=str(tmp_path / type(tokenizer).__name__))
        out = generator("I had always thought", max_new_tokens=5, do_sample=False)[0]["generated_text"]
        assert out.startswith("I had always thought") and len(out) > len("I had always thought")


def test_gradient_checkpointing_gives_the_same_gradients():
    model = make()
    ids = torch.randint(0, 120, (2, 9))
    model.train()
    model(ids, labels=ids).loss.backward()
    plain = model.transformer.wte.weight.grad.clone()
    model.zero_grad()
    # transformers 5.24 renamed gradient_checkpointing_enable (now deprecated) to activation_checkpointing_enable
    enable = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
    enable()
    calls = []
    # (a module early in the block: torch stops recomputing once the last saved tensor is rebuilt)
    model.transformer.h[0].attn.register_forward_hook(lambda *_: calls.append(1))
    model(ids, labels=ids).loss.backward()
    assert len(calls) == 2  # checkpointing is on: the block's body ran again in backward to recompute
    torch.testing.assert_close(model.transformer.wte.weight.grad, plain)


def _edit_config(directory, **changes):
    import json

    path = directory / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"position_encoding": "rope"},
            r"1 weight\(s\) the config has no place for \(transformer.position_encoding.wpe",
        ),
        ({"qkv_bias": True}, r"2 weight\(s\) the config expects are missing \(transformer.h.0.attn.qkv.bias"),
        ({"n_layers": 3}, r"11 weight\(s\) the config expects are missing \(transformer.h.2"),
    ],
)
def test_a_config_that_no_longer_matches_its_weights_fails_to_load(tmp_path, changes, message):
    from hfgpt.errors import WeightsMismatchError

    make().save_pretrained(tmp_path)
    _edit_config(tmp_path, **changes)
    with pytest.raises(WeightsMismatchError, match=message):
        AutoModelForCausalLM.from_pretrained(tmp_path)


def test_a_missing_tensor_fails_to_load_and_a_new_head_may_be_missing(tmp_path):
    from safetensors.torch import load_file, save_file

    from hfgpt.errors import WeightsMismatchError

    make().save_pretrained(tmp_path)
    # a classifier built on the saved causal LM: only its own head (score) is new
    classifier = AutoModelForSequenceClassification.from_pretrained(tmp_path, num_labels=2)
    assert type(classifier) is HFGPTForSequenceClassification
    weights = load_file(tmp_path / "model.safetensors")
    del weights["transformer.h.1.mlp.fc.bias"]
    save_file(weights, tmp_path / "model.safetensors", metadata={"format": "pt"})
    for loader in (AutoModelForCausalLM, AutoModelForSequenceClassification, AutoModel):
        with pytest.raises(WeightsMismatchError, match=r"missing \(\S*h.1.mlp.fc.bias\)"):
            loader.from_pretrained(tmp_path)


def test_weights_of_another_shape_load_only_when_asked(tmp_path):
    from hfgpt.errors import WeightsMismatchError

    make().save_pretrained(tmp_path)
    with pytest.raises(WeightsMismatchError, match="of another shape") as error:
        HFGPTForCausalLM.from_pretrained(tmp_path, emb_dim=64, n_heads=4)
    assert isinstance(error.value, RuntimeError)  # what transformers raises for other shapes
    model = HFGPTForCausalLM.from_pretrained(tmp_path, emb_dim=64, n_heads=4, ignore_mismatched_sizes=True)
    assert model.config.emb_dim == 64
