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


@pytest.mark.parametrize("multiple", [8, 128])
@pytest.mark.parametrize("num_items", [None, 11])
def test_vocabulary_padded_inside_the_loss_changes_nothing_outside(multiple, num_items):
    """37 tokens padded to 40 or 128 inside the matmuls: the loss and both gradients are the unpadded head's,
    and the weight's gradient keeps the real vocabulary's shape."""
    hidden, weight, labels = inputs(seed=2)
    targets = shifted(labels)
    got = loss_and_grads(
        lambda: chunked_linear_cross_entropy(
            hidden,
            weight,
            shift_labels=targets,
            chunk_size=5,
            num_items_in_batch=num_items,
            pad_vocab_to=multiple,
        ),
        hidden,
        weight,
    )
    want = loss_and_grads(lambda: reference_loss(hidden, weight, targets, num_items), hidden, weight)
    assert got[2].shape == (VOCAB, EMB)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-6)


def test_padding_is_on_by_default_on_cuda_only():
    from hfgpt.losses import PAD_VOCAB_MULTIPLE, padded_size

    assert PAD_VOCAB_MULTIPLE.get("cuda") == 128 and PAD_VOCAB_MULTIPLE.get("cpu", 1) == 1
    assert padded_size(50257, 128) == 50304 and padded_size(50304, 128) == 50304  # nanoGPT's 50,304


def test_confident_wrong_predictions_give_a_finite_loss():
    """A target whose probability underflows float32 (logit gap 200) still has its exact loss, 200 nats: the
    log-sum-exp comes from the top logit's probability, never from the target's."""
    hidden = torch.zeros(1, 1, 2)
    hidden[..., 0] = 1.0
    weight = torch.tensor([[200.0, 0.0], [0.0, 0.0], [0.0, 0.0]], requires_grad=True)  # token 0 wins by 200
    targets = torch.tensor([[1]])
    loss = chunked_linear_cross_entropy(hidden.requires_grad_(), weight, shift_labels=targets, chunk_size=1)
    loss.backward()
    torch.testing.assert_close(loss.detach(), torch.tensor(200.0))
    want = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 0.0]])  # softmax - one_hot: (1, 0, 0) - (0, 1, 0)
    torch.testing.assert_close(weight.grad, want)


def test_validation_asks_for_no_logits_and_gets_the_plain_loss():
    """Eval mode with an empty `logits_to_keep`: the chunked loss, equal to cross-entropy on the full logits."""
    model = tiny_model(4).eval()
    _, _, labels = inputs(seed=3)
    ids = labels.clamp_min(0)
    targets = shifted(labels)
    calls = []
    model.lm_head.register_forward_hook(lambda *args: calls.append(1))
    with torch.no_grad():
        out = model(input_ids=ids, shift_labels=targets, logits_to_keep=torch.empty(0, dtype=torch.long))
    assert out.logits is None and not calls  # the head's module never ran: no (tokens, vocabulary) logits
    with torch.no_grad():
        logits = model(input_ids=ids).logits
    want = F.cross_entropy(logits.reshape(-1, VOCAB), targets.reshape(-1), ignore_index=-100)
    torch.testing.assert_close(out.loss, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("training", [True, False])
def test_the_loss_traces_into_one_graph(training, monkeypatch):
    """torch.compile traces the model with its loss, padding included, without a graph break (fullgraph works)."""
    import torch._dynamo as dynamo

    from hfgpt import losses

    monkeypatch.setitem(losses.PAD_VOCAB_MULTIPLE, "cpu", 8)
    model = tiny_model(4).train(training)
    _, _, labels = inputs()
    ids = labels.clamp_min(0)
    keep = {} if training else {"logits_to_keep": torch.empty(0, dtype=torch.long)}
    dynamo.reset()
    explained = dynamo.explain(lambda ids: model(input_ids=ids, labels=labels, **keep).loss)(ids)
    assert explained.graph_break_count == 0, explained.break_reasons
    assert explained.graph_count == 1


@pytest.mark.slow
def test_compiled_training_step_matches_eager(monkeypatch):
    """Forward and backward through AOTAutograd (torch.compile without code generation): same loss and
    gradients as eager, with the padded vocabulary."""
    from hfgpt import losses

    monkeypatch.setitem(losses.PAD_VOCAB_MULTIPLE, "cpu", 8)
    _, _, labels = inputs()
    ids = labels.clamp_min(0)
    results = []
    for compiled in (False, True):
        model = tiny_model(4)
        step = torch.compile(model, backend="aot_eager", fullgraph=True) if compiled else model
        loss = step(input_ids=ids, labels=labels).loss
        loss.backward()
        results.append((loss.detach(), {n: p.grad for n, p in model.named_parameters()}))
    (eager, eager_grads), (compiled_loss, compiled_grads) = results
    torch.testing.assert_close(compiled_loss, eager)
    for name, grad in eager_grads.items():
        torch.testing.assert_close(compiled_grads[name], grad, rtol=1e-5, atol=1e-6, msg=name)
