"""A memory-lean causal-LM loss: the LM head and the cross-entropy fused, computed chunk by chunk over tokens.

With GPT-2's 50,257-token vocabulary the `(tokens, vocabulary)` logits of a training batch (and their gradient,
and the float copy the plain loss makes) are the largest tensors of a step. `chunked_linear_cross_entropy`
never holds more than one chunk's logits: each chunk's logits are computed, reduced to the loss, turned into
that chunk's share of the gradients, and dropped. Computing the gradients during the forward (rather than
recomputing the logits in backward) keeps the speed of the plain loss: every matmul runs exactly once, as in
the plain forward + backward. The price is that the gradients are computed even if backward is never called;
the wrapper therefore only asks for them when autograd will need them.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def _chunk_loss_and_grads(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    scale: torch.Tensor,
    ignore_index: int,
    grad_weight: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The summed loss of one chunk of tokens and, when `grad_weight` is given, the gradient of
    `scale * loss_sum` with respect to the chunk's hidden states (returned; `grad_weight` is accumulated).

    The logits are computed in the ambient (autocast) dtype, as `lm_head` would, then reduced in float32, as
    transformers' `ForCausalLMLoss` does with `logits.float()`.
    """
    raw_logits = hidden @ weight.t()  # (chunk, vocab), in the autocast dtype when autocast is on
    logits = raw_logits.float()
    valid = targets != ignore_index
    safe_targets = torch.where(valid, targets, 0).unsqueeze(1)  # gather needs an index inside the vocabulary
    lse = torch.logsumexp(logits, dim=-1)
    loss_sum = ((lse - logits.gather(1, safe_targets).squeeze(1)) * valid).sum()
    if grad_weight is None:
        return loss_sum, None
    # d(loss)/d(logits) = softmax - one_hot(target), zero for ignored tokens; built in place in `logits`.
    grad_logits = logits.sub_(lse.unsqueeze(1)).exp_()
    grad_logits.scatter_add_(1, safe_targets, torch.full_like(safe_targets, -1, dtype=grad_logits.dtype))
    grad_logits.mul_((valid * scale).unsqueeze(1))
    grad_logits = grad_logits.to(raw_logits.dtype)  # the backward matmuls run in the forward's precision
    grad_weight.add_(grad_logits.t() @ hidden)
    return loss_sum, grad_logits @ weight


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
    ) -> torch.Tensor:
        loss = torch.zeros((), dtype=torch.float32, device=hidden.device)
        grad_hidden = torch.empty_like(hidden) if with_grads else None
        # float32 accumulator: summing bf16/fp16 partial products over many chunks would lose precision.
        grad_weight = torch.zeros_like(weight, dtype=torch.float32) if with_grads else None
        for start in range(0, hidden.shape[0], chunk_size):
            part = slice(start, start + chunk_size)
            chunk_loss, chunk_grad = _chunk_loss_and_grads(
                hidden[part], weight, targets[part], scale, ignore_index, grad_weight
            )
            loss = loss + chunk_loss
            if with_grads:
                grad_hidden[part] = chunk_grad
        if with_grads:
            ctx.save_for_backward(grad_hidden, grad_weight.to(weight.dtype))
        return loss * scale

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        grad_hidden, grad_weight = ctx.saved_tensors
        grad_output = grad_output.to(grad_hidden.dtype)
        return grad_hidden * grad_output, grad_weight * grad_output, None, None, None, None, None


def chunked_linear_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    labels: torch.Tensor | None = None,
    shift_labels: torch.Tensor | None = None,
    chunk_size: int = 1024,
    num_items_in_batch: torch.Tensor | int | None = None,
    ignore_index: int = -100,
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
    return ChunkedLinearCrossEntropy.apply(
        hidden, weight, targets, scale, int(chunk_size), ignore_index, with_grads
    )


__all__ = ["ChunkedLinearCrossEntropy", "chunked_linear_cross_entropy"]
