"""A memory-lean causal-LM loss: the LM head and the cross-entropy fused, computed chunk by chunk over tokens.

With GPT-2's 50,257-token vocabulary the `(tokens, vocabulary)` logits of a training batch (and their gradient,
and the float copy the plain loss makes) are the largest tensors of a step. `chunked_linear_cross_entropy`
never holds more than one chunk's logits: each chunk's logits are computed, reduced to the loss, turned into
that chunk's share of the gradients, and dropped. Computing the gradients during the forward (rather than
recomputing the logits in backward) keeps the speed of the plain loss: every matmul runs exactly once, as in
the plain forward + backward. The price is that the gradients are computed even if backward is never called;
the wrapper therefore only asks for them when autograd will need them.

On a GPU the head's matmuls run with the vocabulary padded to a multiple of 128 (`PAD_VOCAB_MULTIPLE`): 50,257
columns leave the matrices' leading dimension unaligned, which costs tensor-core kernels speed (the book's
speed-up chapter gains 13% from 50,304 alone). The padding lives only inside the loss: the extra rows of the
weight are zeros, their logits are masked to -inf (no probability, no gradient), and the model's ids, its
logits and its weights keep the real vocabulary. Every operation has static shapes and reads nothing on the
host, so `torch.compile` traces the loss (the whole training step) without graph breaks.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

# Device type -> the multiple the vocabulary is padded to inside the loss's matmuls (1: none). The CPU gains
# nothing from aligned shapes and would pay for the padded copy; a benchmark may change these.
PAD_VOCAB_MULTIPLE: dict[str, int] = {"cuda": 128}


def padded_size(vocab_size: int, multiple: int) -> int:
    """`vocab_size` rounded up to a multiple of `multiple` (50,257 -> 50,304 for 128)."""
    return -(-vocab_size // multiple) * multiple


def _chunk_loss_and_grads(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    ignore_index: int,
    grad_weight: torch.Tensor | None,
    vocab_size: int,
    row_scale: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The summed loss of one chunk of tokens and, when `grad_weight` is given, the gradient of the summed loss
    with respect to the chunk's hidden states, each token's row times `row_scale` (returned; the unscaled
    gradient of the weight, ignored tokens left out, is accumulated into `grad_weight`).

    The logits are computed in the ambient (autocast) dtype, as `lm_head` would, and reduced in float32, as
    transformers' `ForCausalLMLoss` does with `logits.float()`. Columns from `vocab_size` on are padding: masked.
    Without gradients the loss is torch's cross-entropy. With them one fused softmax over the logits gives the
    gradient (softmax - one_hot(target)) and, through the largest logit, whose probability is at least
    1/vocabulary and so never underflows, the log-sum-exp of the loss: two passes over the `(chunk, vocabulary)`
    logits where a log-sum-exp, a subtraction and an exponential would take five, which is what the loss costs
    on a GPU, where it is bound by memory.
    """
    logits = hidden @ weight.t()  # (chunk, vocab), in the autocast dtype when autocast is on
    if weight.shape[0] > vocab_size:
        logits[:, vocab_size:] = float("-inf")  # exp(-inf) = 0: no probability, so no gradient either
    if grad_weight is None:
        return F.cross_entropy(logits.float(), targets, ignore_index=ignore_index, reduction="sum"), None
    valid = targets != ignore_index
    safe_targets = torch.where(valid, targets, 0).unsqueeze(1)  # gather needs an index inside the vocabulary
    probs = torch.softmax(logits, dim=-1, dtype=torch.float32)
    top, top_index = logits.max(dim=-1, keepdim=True)
    lse = top.float() - probs.gather(1, top_index).log()  # log-sum-exp = top logit - log(its probability)
    loss_sum = ((lse - logits.gather(1, safe_targets).float()).squeeze(1) * valid).sum()
    # d(loss)/d(logits) = softmax - one_hot(target), built in place; ignored tokens' rows are dropped below,
    # on the (chunk, emb) side, where that costs nothing.
    probs.scatter_add_(1, safe_targets, torch.full_like(safe_targets, -1, dtype=probs.dtype))
    grad_logits = probs.to(logits.dtype)  # the backward matmuls run in the forward's precision
    keep = valid.unsqueeze(1).to(hidden.dtype)
    grad_weight.add_(grad_logits.t() @ (hidden * keep))
    rows = keep if row_scale is None else valid.unsqueeze(1) * row_scale
    return loss_sum, (grad_logits @ weight) * rows


class ChunkedLinearCrossEntropy(torch.autograd.Function):
    """`cross_entropy(hidden @ weight.T, targets, reduction="sum") * scale`, chunk by chunk over tokens.

    Forward computes the loss and both gradients (for a unit upstream gradient); backward only scales them by
    the upstream gradient, so no logits are kept between forward and backward.
    """

    @staticmethod
    def forward(
        ctx,
        hidden: torch.Tensor,
        weight: torch.Tensor,
        targets: torch.Tensor,
        scale: torch.Tensor,
        chunk_size: int,
        ignore_index: int,
        with_grads: bool,
        vocab_size: int,
    ) -> torch.Tensor:
        loss = torch.zeros((), dtype=torch.float32, device=hidden.device)
        grad_hidden = torch.empty_like(hidden) if with_grads else None
        # float32 accumulator: summing bf16/fp16 partial products over many chunks would lose precision.
        grad_weight = torch.zeros_like(weight, dtype=torch.float32) if with_grads else None
        for start in range(0, hidden.shape[0], chunk_size):
            part = slice(start, start + chunk_size)
            chunk_loss, chunk_grad = _chunk_loss_and_grads(
                hidden[part], weight, targets[part], ignore_index, grad_weight, vocab_size, scale
            )
            loss = loss + chunk_loss
            if with_grads:
                grad_hidden[part] = chunk_grad
        if with_grads:
            ctx.save_for_backward(grad_hidden, (grad_weight * scale).to(weight.dtype))
        return loss * scale

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        grad_hidden, grad_weight = ctx.saved_tensors
        grad_output = grad_output.to(grad_hidden.dtype)
        return grad_hidden * grad_output, grad_weight * grad_output, None, None, None, None, None, None


def chunked_linear_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    labels: torch.Tensor | None = None,
    shift_labels: torch.Tensor | None = None,
    chunk_size: int = 1024,
    num_items_in_batch: torch.Tensor | int | None = None,
    ignore_index: int = -100,
    pad_vocab_to: int | None = None,
) -> torch.Tensor:
    """The causal-LM loss of `hidden @ weight.T` without materialising the `(tokens, vocabulary)` logits.

    Equal, value and gradients, to transformers' `ForCausalLMLoss` on the full logits.

    Args:
        hidden (`torch.Tensor` of shape `(batch, seq, emb)`): final hidden states (after the last LayerNorm).
        weight (`torch.Tensor` of shape `(vocab, emb)`): the LM head's weight (the tied token embedding).
        labels (`torch.LongTensor` of shape `(batch, seq)`, *optional*): targets aligned with the inputs,
            shifted here (position `i` predicts `labels[i + 1]`); `ignore_index` marks tokens without a loss.
        shift_labels (`torch.LongTensor` of shape `(batch, seq)`, *optional*): targets already shifted; used
            instead of `labels` when given.
        chunk_size (`int`, defaults to 1024): tokens per chunk; peak extra memory is about
            `chunk_size * vocab * 4` bytes times a small constant.
        num_items_in_batch (`torch.Tensor` or `int`, *optional*): divide the summed loss by this (Trainer's
            token count over gradient-accumulation steps) instead of taking the mean over this batch.
        ignore_index (`int`, defaults to -100): target value that contributes no loss.
        pad_vocab_to (`int`, *optional*): run the head's matmuls with the vocabulary padded to a multiple of
            this (zero rows whose logits are masked); default `PAD_VOCAB_MULTIPLE` for the device (128 on CUDA,
            none elsewhere). The loss and the gradients are those of the unpadded head.

    Returns:
        `torch.Tensor`: the scalar float32 loss.
    """
    if shift_labels is None:
        if labels is None:
            raise ValueError("chunked_linear_cross_entropy needs labels or shift_labels")
        shift_labels = F.pad(labels, (0, 1), value=ignore_index)[..., 1:]
    targets = shift_labels.reshape(-1).to(hidden.device)
    hidden = hidden.reshape(-1, hidden.shape[-1])
    if num_items_in_batch is None:
        count = (targets != ignore_index).sum()  # a tensor: no host read, so no GPU synchronisation
    else:
        count = torch.as_tensor(num_items_in_batch, device=hidden.device)
    scale = 1.0 / count.to(torch.float32)
    with_grads = torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad)
    vocab_size = weight.shape[0]
    multiple = PAD_VOCAB_MULTIPLE.get(weight.device.type, 1) if pad_vocab_to is None else pad_vocab_to
    if multiple > 1 and vocab_size % multiple:
        # zero rows at the end; autograd hands the unpadded weight the first `vocab_size` rows of the gradient
        weight = F.pad(weight, (0, 0, 0, padded_size(vocab_size, multiple) - vocab_size))
    return ChunkedLinearCrossEntropy.apply(
        hidden, weight, targets, scale, int(chunk_size), ignore_index, with_grads, vocab_size
    )


__all__ = ["PAD_VOCAB_MULTIPLE", "ChunkedLinearCrossEntropy", "chunked_linear_cross_entropy", "padded_size"]
