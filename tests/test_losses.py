"""The chunked linear + cross-entropy loss against torch's cross-entropy on the full logits: value and gradients."""

import pytest
import torch
from torch.nn import functional as F

from hfgpt import HFGPTConfig, HFGPTForCausalLM
from hfgpt.errors import ConfigError
from hfgpt.losses import chunked_linear_cross_entropy

BATCH, SEQ, EMB, VOCAB = 2, 9, 16, 37


def reference_loss(hidden, weight, targets, num_items=None):
    """The plain loss: full logits, then torch's cross-entropy (targets already shifted, -100 ignored)."""
    logits = (hidden @ weight.t()).float().reshape(-1, weight.shape[0])
    if num_items is None:
        return F.cross_entropy(logits, targets.reshape(-1), ignore_index=-100)
    return F.cross_entropy(logits, targets.reshape(-1), ignore_index=-100, reduction="sum") / num_items


def inputs(seed=0, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    hidden = torch.randn(BATCH, SEQ, EMB, generator=gen, dtype=dtype).requires_grad_()
    weight = torch.randn(VOCAB, EMB, generator=gen, dtype=dtype).requires_grad_()
    labels = torch.randint(0, VOCAB, (BATCH, SEQ), generator=gen)
    labels[0, 2] = labels[1, 5] = labels[1, 6] = -100  # ignored tokens (padding, prompts)
    return hidden, weight, labels


def shifted(labels):
    """Position i predicts labels[i + 1]; the last position predicts nothing."""
    return torch.cat([labels[:, 1:], torch.full_like(labels[:, :1], -100)], dim=1)


def loss_and_grads(fn, hidden, weight):
    hidden.grad = weight.grad = None
    loss = fn()
    (loss * 3.0).backward()  # an upstream gradient other than 1 must scale both gradients
    return loss.detach(), hidden.grad.clone(), weight.grad.clone()


@pytest.mark.parametrize("chunk_size", [1, 4, 7, 1000])
@pytest.mark.parametrize("num_items", [None, 11, "tensor"])
@pytest.mark.parametrize("pre_shifted", [False, True])
def test_matches_full_logits_cross_entropy(chunk_size, num_items, pre_shifted):
    hidden, weight, labels = inputs()
    if num_items == "tensor":
        num_items = torch.tensor(13)
    targets = shifted(labels)
    kwargs = dict(shift_labels=targets) if pre_shifted else dict(labels=labels)
    got = loss_and_grads(
        lambda: chunked_linear_cross_entropy(
            hidden, weight, chunk_size=chunk_size, num_items_in_batch=num_items, **kwargs
        ),
        hidden,
        weight,
    )
    want = loss_and_grads(lambda: reference_loss(hidden, weight, targets, num_items), hidden, weight)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-6)


def test_all_ignored_with_num_items_is_zero():
    hidden, weight, labels = inputs()
    loss, grad_hidden, grad_weight = loss_and_grads(
        lambda: chunked_linear_cross_entropy(
            hidden, weight, labels=torch.full_like(labels, -100), chunk_size=4, num_items_in_batch=5
        ),
        hidden,
        weight,
    )
    assert loss.item() == 0.0 and not grad_hidden.any() and not grad_weight.any()


def test_without_grad_gives_only_the_loss():
    hidden, weight, labels = inputs()
    with torch.no_grad():
        loss = chunked_linear_cross_entropy(hidden, weight, labels=labels, chunk_size=4)
    torch.testing.assert_close(loss, reference_loss(hidden, weight, shifted(labels)).detach())
    assert not loss.requires_grad


def test_bf16_autocast_matches_autocast_full_logits():
    hidden, weight, labels = inputs(seed=1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = loss_and_grads(
            lambda: chunked_linear_cross_entropy(hidden, weight, labels=labels, chunk_size=5), hidden, weight
        )
        want = loss_and_grads(lambda: reference_loss(hidden, weight, shifted(labels)), hidden, weight)
    assert got[1].dtype == hidden.dtype and got[2].dtype == weight.dtype
    torch.testing.assert_close(got[0], want[0], rtol=1e-3, atol=1e-3)
    for g, w in zip(got[1:], want[1:]):  # bf16 matmuls: compare at bf16 resolution
        torch.testing.assert_close(g, w, rtol=2e-2, atol=2e-2)


def tiny_model(loss_chunk_size):
    torch.manual_seed(0)
    config = HFGPTConfig.from_preset("tiny", vocab_size=VOCAB, drop_rate=0.0, loss_chunk_size=loss_chunk_size)
    return HFGPTForCausalLM(config).train()


@pytest.mark.parametrize("num_items", [None, 20])
def test_model_training_loss_and_gradients_match_plain_loss(num_items):
    """Every parameter's gradient, the tied embedding included, equals the plain loss's."""
    _, _, labels = inputs()
    ids = labels.clamp_min(0)
    kwargs = {} if num_items is None else {"num_items_in_batch": num_items}
    results = []
    for chunk in (3, 0):
        model = tiny_model(chunk)
        assert model.lm_head.weight is model.transformer.wte.weight
        out = model(input_ids=ids, labels=labels, **kwargs)
        out.loss.backward()
        results.append((out, {n: p.grad for n, p in model.named_parameters()}))
    (chunked, chunked_grads), (plain, plain_grads) = results
    assert chunked.logits is None and plain.logits is not None
    torch.testing.assert_close(chunked.loss, plain.loss, rtol=1e-5, atol=1e-6)
    assert chunked_grads.keys() == plain_grads.keys()
    for name in plain_grads:
        torch.testing.assert_close(chunked_grads[name], plain_grads[name], rtol=1e-4, atol=1e-6, msg=name)


def test_eval_mode_and_shift_labels_in_training():
    model = tiny_model(4)
    _, _, labels = inputs()
    ids = labels.clamp_min(0)
    targets = shifted(labels)
    trained = model(input_ids=ids, shift_labels=targets).loss
    model.eval()
    out = model(input_ids=ids, labels=ids)
    assert out.logits.shape == (BATCH, SEQ, VOCAB)  # users asking for logits in eval mode get them
    want = F.cross_entropy(model(input_ids=ids).logits.reshape(-1, VOCAB), targets.reshape(-1))
    torch.testing.assert_close(trained, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("bad", [-1, 1.5, True, "64"])
def test_config_rejects_bad_chunk_size(bad):
    with pytest.raises(ConfigError, match="loss_chunk_size"):
        HFGPTConfig.from_preset("tiny", loss_chunk_size=bad)


@pytest.mark.parametrize("ok", [0, None, 1, 4096])
def test_config_accepts_chunk_size(ok):
    assert HFGPTConfig.from_preset("tiny", loss_chunk_size=ok).loss_chunk_size == ok
