"""Static cache, full-graph compile, packed (padding-free) batches and custom 4D masks, for every strategy."""

import copy

import pytest
import torch
from transformers import DataCollatorWithFlattening
from transformers.cache_utils import StaticCache

from hfgpt import HFGPTConfig, HFGPTForCausalLM
from hfgpt.errors import ModelInputError

STRATEGIES = ["learned", "sinusoidal", "rope", "none", "alibi", "t5"]  # alibi, t5: plugins/hfgpt-*


def make(position_encoding: str, attn: str = "sdpa", **fields) -> HFGPTForCausalLM:
    torch.manual_seed(0)
    config = HFGPTConfig.from_preset(
        "tiny", vocab_size=120, drop_rate=0.0, position_encoding=position_encoding, **fields
    )
    return HFGPTForCausalLM._from_config(copy.deepcopy(config), attn_implementation=attn).eval()


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_static_cache_generates_the_dynamic_cache_tokens(strategy):
    model = make(strategy)
    prompt = torch.randint(0, 120, (2, 7))
    mask = torch.ones_like(prompt)
    mask[1, :3] = 0  # left padding: positions come from the mask, slots do not
    kwargs = dict(attention_mask=mask, max_new_tokens=12, do_sample=False)
    dynamic = model.generate(prompt, **kwargs)
    static = model.generate(prompt, cache_implementation="static", **kwargs)
    assert static.shape == (2, 19) and torch.equal(static, dynamic)


@pytest.mark.parametrize("strategy", ["learned", "rope", "alibi"])
def test_forward_compiles_as_one_graph_for_prefill_and_static_cache_steps(strategy):
    """fullgraph=True fails on any graph break: host reads of ids (`int(ids.max())`), data-dependent branches."""
    torch._dynamo.reset()
    model = make(strategy)
    compiled = torch.compile(
        model.forward, fullgraph=True, backend="eager"
    )  # graph capture, no C++ toolchain
    ids = torch.randint(0, 120, (2, 6))
    torch.testing.assert_close(compiled(ids).logits, model(ids).logits)

    cache = StaticCache(config=model.config, max_cache_len=16)
    expected_cache = StaticCache(config=model.config, max_cache_len=16)
    model(ids, cache=expected_cache)
    compiled(ids, cache=cache)
    step = torch.randint(0, 120, (2, 1))
    torch.testing.assert_close(compiled(step, cache=cache).logits, model(step, cache=expected_cache).logits)


def test_out_of_vocabulary_ids_are_clear_errors_where_they_enter():
    model = make("learned")
    with pytest.raises(
        ModelInputError, match=r"token id 120 is outside the model's vocabulary \(vocab_size=120\)"
    ):
        model.generate(torch.tensor([[1, 120]]), max_new_tokens=2)
    with pytest.raises(ModelInputError, match=r"token id -1 is outside the model's vocabulary"):
        model(torch.tensor([[1, -1]]))  # eager on CPU: the lookup's own failure, named


def test_a_static_cache_longer_than_learned_positions_is_refused():
    model = make("learned")  # tiny: context_length 64
    with pytest.raises(ModelInputError, match="static cache holds 80 tokens.*knows only 64 positions"):
        model(torch.randint(0, 120, (1, 4)), cache=StaticCache(config=model.config, max_cache_len=80))


def per_token_losses(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each next-token prediction, 0 where the label is -100. (batch, seq - 1)"""
    return torch.nn.functional.cross_entropy(
        logits[:, :-1].transpose(1, 2), labels[:, 1:], ignore_index=-100, reduction="none"
    )


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_packed_documents_give_the_losses_of_padded_ones(strategy, attn):
    torch.manual_seed(1)
    documents = [torch.randint(0, 120, (n,)).tolist() for n in (5, 11, 3, 8)]
    model = make(strategy, attn)

    # Reference: one document per row, right-padded, positions 0.. per row.
    longest = max(map(len, documents))
    ids = torch.zeros(len(documents), longest, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, doc in enumerate(documents):
        ids[row, : len(doc)], mask[row, : len(doc)] = torch.tensor(doc), 1
    labels = ids.masked_fill(mask == 0, -100)
    padded = per_token_losses(model(ids, attention_mask=mask).logits, labels)
    expected = torch.cat([padded[row, : len(doc) - 1] for row, doc in enumerate(documents)])

    # Packed: one row, position_ids restarting at each document, -100 where a document starts.
    batch = DataCollatorWithFlattening(return_position_ids=True, separator_id=-100)(
        [{"input_ids": doc} for doc in documents], return_tensors="pt"
    )
    assert batch["position_ids"][0, 5].item() == 0  # the second document starts over
    out = model(batch["input_ids"], position_ids=batch["position_ids"], labels=batch["labels"])
    packed = per_token_losses(out.logits, batch["labels"])[0]
    packed = packed[batch["labels"][0, 1:] != -100]

    torch.testing.assert_close(packed, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.loss, expected.mean(), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_custom_4d_mask_shares_a_prefix_between_two_continuations(strategy, attn):
    """One row holding prefix + continuation A + continuation B, B not seeing A, equals two separate rows."""
    model = make(strategy, attn)
    prefix, cont_a, cont_b = (torch.randint(0, 120, (n,)) for n in (4, 3, 3))
    row = torch.cat([prefix, cont_a, cont_b])[None]  # (1, 10)
    position_ids = torch.cat([torch.arange(7), torch.arange(4, 7)])[None]
    visible = torch.ones(10, 10).tril().bool()
    visible[7:, 4:7] = False  # B's tokens do not see A's
    masks = {
        "bool": visible[None, None],
        "float": torch.zeros(1, 1, 10, 10).masked_fill(~visible, float("-inf")),
    }

    separate = model(torch.stack([torch.cat([prefix, cont_a]), torch.cat([prefix, cont_b])])).logits
    for mask in masks.values():
        shared = model(row, attention_mask=mask, position_ids=position_ids).logits[0]
        torch.testing.assert_close(shared[4:7], separate[0, 4:], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(shared[7:], separate[1, 4:], atol=1e-5, rtol=1e-5)


def test_attention_implementation_switches_at_run_time():
    model = make("alibi", "sdpa")
    ids = torch.randint(0, 120, (2, 9))
    sdpa_logits = model(ids).logits
    model.set_attn_implementation("eager")
    out = model(ids, output_attentions=True, output_hidden_states=True)
    torch.testing.assert_close(out.logits, sdpa_logits, atol=1e-5, rtol=1e-5)
    assert len(out.attentions) == model.config.n_layers and out.attentions[0].shape == (2, 4, 9, 9)
    assert len(out.hidden_states) == model.config.n_layers + 1


def test_return_dict_false_gives_a_tuple():
    model = make("rope")
    ids = torch.randint(0, 120, (1, 5))
    logits, cache = model(ids, return_dict=False)
    torch.testing.assert_close(logits, model(ids).logits)
    assert cache.get_seq_length() == 5
