"""Held-out evaluation of a causal language model: loss, perplexity and bits per byte at several lengths.

The text becomes the same token stream training uses (`hfgpt.data.stream`: every document tokenized with the
model's own tokenizer, no special tokens added, joined with the tokenizer's EOS, in a memory-mapped file).
Every token of the stream except the first is scored exactly once (the first has no context to be predicted
from), so all lengths and both protocols score the same tokens and their numbers compare directly.

Windows are the stream's windows with the tail covered (`TokenStream.window_starts(cover_tail=True)`): they
hold `length` input tokens, and every input position predicts the token after it, the last one included: the
targets of the window at `begin` are tokens `begin + 1 .. begin + length`, the pairs `window()` trains on.
Windows start every `stride` tokens (`stride = length`, the default, is non-overlapping windows) and a window
scores only the targets no earlier window scored. The last window ends with the text, so nothing is padded:
the cost follows the text, and a text shorter than `length` is scored once, as it is. This is the algorithm of
transformers' perplexity guide run on windows of `length + 1` tokens whose last token is only a target, so the
model never sees more than `length` tokens and no token is lost where two windows meet. With `stride <
length` each scored token (past the first window) is predicted from at least `length - stride + 1` tokens of
context.

The three numbers, over the scored tokens:

* loss: the mean cross-entropy in nats;
* perplexity: `exp(loss)`;
* bits per byte: the summed cross-entropy in bits (nats / ln 2) divided by the UTF-8 bytes of the text: every
  document that has at least one token, counted in full (whitespace and characters the tokenizer drops or
  maps to an unknown token included). The EOS tokens between documents are scored and count no bytes. The
  stream's first token is not scored but its bytes count, as lm-evaluation-harness counts a whole
  document: subtracting them would need the tokenizer's character offsets, which hfgpt's tokenizers do not
  give (decoding an unknown token alone does not give its text back), and the difference is one token in
  the whole text. Unlike perplexity this does not depend on how the tokenizer cuts the text, so it
  compares models with different tokenizers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from datasets import DatasetDict

from hfgpt.data.sources import as_dataset
from hfgpt.data.stream import TokenStream, build_stream, window_starts
from hfgpt.errors import ConfigError, DataError
from hfgpt.position_encoding import max_positions


@dataclass(frozen=True)
class EvalResult:
    """The evaluation at one length.

    Args:
        length (`int`): input tokens per window.
        stride (`int`): tokens between window starts (`length`: non-overlapping windows).
        tokens (`int`): tokens scored (the stream's tokens but its first); 0 when `encodable` is False.
        bytes (`int`, *optional*): UTF-8 bytes of the documents that have a token (see the module docstring);
            None when the scored tokens end inside a document (`max_tokens`) or the ids came without text.
        loss (`float`, *optional*): mean cross-entropy in nats per scored token; None when not encodable.
        perplexity (`float`, *optional*): `exp(loss)`.
        bits_per_byte (`float`, *optional*): summed cross-entropy in bits over `bytes`.
        encodable (`bool`): False when the model's positions cannot encode `length` tokens.
        reason (`str`, *optional*): why the length was not evaluated.
    """

    length: int
    stride: int
    tokens: int
    bytes: int | None
    loss: float | None
    perplexity: float | None
    bits_per_byte: float | None
    encodable: bool = True
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_eval_options(
    lengths: Sequence[int] | int | None,
    stride: int | None = None,
    batch_size: int = 8,
    stride_flag: str = "--stride",
) -> list[int] | None:
    """Validate the options before any work; return the lengths without duplicates, in the given order.

    `lengths=None` (not known yet: the model's context length) checks only the stride and batch size;
    `stride_flag` is how the calling command names the stride in its messages.
    """

    def positive(value: Any) -> bool:
        return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value > 0

    if stride is not None and not positive(stride):
        raise ConfigError(f"{stride_flag} must be a positive integer, got {stride!r}")
    if not positive(batch_size):
        raise ConfigError(f"--batch-size must be a positive integer, got {batch_size!r}")
    if lengths is None:
        return None
    if positive(lengths):
        lengths = [lengths]
    if isinstance(lengths, (str, bytes)) or not lengths:
        raise ConfigError(f"--lengths must be a list of positive integers (e.g. 256,512), got {lengths!r}")
    bad = next((length for length in lengths if not positive(length)), None)
    if bad is not None:
        raise ConfigError(f"--lengths must be positive integers, got {bad!r}")
    if stride is not None and stride > min(lengths):
        # eval's --stride may be left out (non-overlapping windows); compare's --sliding-stride has a default
        leave_out = ", or leave it out for non-overlapping windows" if stride_flag == "--stride" else ""
        raise ConfigError(
            f"{stride_flag} ({stride}) must not exceed the evaluation length ({min(lengths)}): a larger "
            f"stride would skip tokens. Pass {stride_flag} {min(lengths)} or less{leave_out}"
        )
    return list(dict.fromkeys(int(length) for length in lengths))


def eval_stream(
    tokenizer, source: Any, text_column: str = "text", num_proc: int | None = None
) -> TokenStream:
    """The evaluation stream of `source` (see the module docstring), to score with one or several models.

    `source`: a text, a list of texts, a `pathlib.Path` (or a list of them) or a `datasets.Dataset` with a
    `text_column` (as for `window()`).
    """
    dataset = as_dataset(source, text_column)
    if isinstance(dataset, DatasetDict):
        raise DataError("evaluate one split: pass dataset['test'] (or another split), not a DatasetDict")
    stream = build_stream(dataset, tokenizer, text_column=text_column, num_proc=num_proc)
    if stream.n_tokens == 0:
        raise DataError("the evaluation text is empty (no tokens): pass files that contain text")
    return stream


def score_stream(
    model,
    stream: TokenStream,
    length: int,
    stride: int,
    batch_size: int = 8,
    progress: bool = False,
    desc: str | None = None,
    n_tokens: int | None = None,
) -> tuple[float, int]:
    """`(summed cross-entropy in nats, tokens scored)` of the stream's tokens but the first, in windows.

    See the module docstring for the windows; `n_tokens` scores only the stream's first tokens. Windows are read
    from the memory-mapped stream a batch at a time and the sum is kept on the model's device, read back once at
    the end: no step waits for the device to hand back a number.
    """
    from tqdm.auto import tqdm

    n = min(stream.n_tokens, n_tokens or stream.n_tokens)
    if n < 2:
        raise DataError(f"the evaluation text has {n} token(s): at least 2 are needed (one to predict from)")
    device = next(model.parameters()).device
    starts = window_starts(n, length, stride, cover_tail=True)
    whole = int((starts + length <= n - 1).sum())  # the last window may end with the text, shorter
    accumulate = torch.float32 if device.type == "mps" else torch.float64
    total = torch.zeros((), dtype=accumulate, device=device)
    batches = [starts[i : min(i + batch_size, whole)] for i in range(0, whole, batch_size)]
    if whole < len(starts):
        batches.append(starts[whole:])
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for begin in tqdm(batches, desc=desc, disable=not progress, unit="batch"):
                size = min(length, n - 1 - int(begin[0]))  # inputs of these windows: all whole but the last
                window = torch.from_numpy(stream.gather(begin, size).astype(np.int64)).to(device)
                inputs, targets = window[:, :-1], window[:, 1:]
                # A window scores the targets no earlier window reached: from position length - stride on
                # (the first window scores all).
                first_new = torch.from_numpy(np.where(begin == 0, 0, length - stride)).to(device)
                scored = torch.arange(size, device=device) >= first_new[:, None]
                logits = model(input_ids=inputs, use_cache=False).logits
                nats = F.cross_entropy(
                    logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none"
                )
                total += torch.where(scored.reshape(-1), nats, 0.0).sum(dtype=accumulate)
    finally:
        model.train(was_training)
    return float(total), n - 1


def _result(length: int, stride: int, nats: float, tokens: int, n_bytes: int | None) -> EvalResult:
    loss = nats / tokens
    perplexity = math.exp(loss) if loss < 700 else math.inf
    bits_per_byte = nats / math.log(2) / n_bytes if n_bytes else None
    return EvalResult(length, stride, tokens, n_bytes, loss, perplexity, bits_per_byte)


def evaluate(
    model,
    tokenizer,
    texts_or_dataset: Any,
    lengths: Sequence[int] | int,
    stride: int | None = None,
    batch_size: int = 8,
    *,
    text_column: str = "text",
    progress: bool = False,
    max_tokens: int | None = None,
) -> list[EvalResult]:
    """Loss, perplexity and bits per byte of held-out text at each length (see the module docstring).

    Args:
        model: a causal language model (`HFGPTForCausalLM` or any transformers `*ForCausalLM`), on the
            device to evaluate on.
        tokenizer: the model's tokenizer.
        texts_or_dataset: a text, a list of texts, a `pathlib.Path` (or a list of them), a
            `datasets.Dataset` with a `text_column` (e.g. `hfgpt.data.sources.load_corpus(...)`), or a
            `TokenStream` from `eval_stream` (to score the same text with several models).
        lengths (`int` or a sequence of `int`): input tokens per window, one result each.
        stride (`int`, *optional*): tokens between window starts, at most the smallest length; None (the
            default) for non-overlapping windows (stride = length).
        batch_size (`int`, defaults to 8): windows per forward pass.
        text_column (`str`, defaults to `"text"`): the column holding the text.
        progress (`bool`, defaults to `False`): show a progress bar per length.
        max_tokens (`int`, *optional*): score only the stream's first `max_tokens + 1` tokens (the same ones at
            every length); bits per byte is then not reported, as the cut falls inside a document.

    Returns:
        One `EvalResult` per length, in order. A length the model's positions cannot encode (e.g. past a
        `learned` model's context length) is not run: its result has `encodable=False` and a `reason`.
    """
    lengths = check_eval_options(lengths, stride, batch_size)
    stream = (
        texts_or_dataset
        if isinstance(texts_or_dataset, TokenStream)
        else eval_stream(tokenizer, texts_or_dataset, text_column)
    )
    n_tokens = min(stream.n_tokens, max_tokens + 1) if max_tokens else stream.n_tokens
    n_bytes = stream.n_bytes if n_tokens == stream.n_tokens else None
    limit = max_positions(model.config)
    results = []
    for length in lengths:
        step = stride or length
        if limit is not None and length > limit:
            strategy = getattr(model.config, "position_encoding", model.config.model_type)
            reason = f"position encoding {strategy!r} cannot encode {length} positions (it knows {limit})"
            results.append(EvalResult(length, step, 0, n_bytes, None, None, None, False, reason))
            continue
        nats, tokens = score_stream(
            model, stream, length, step, batch_size, progress, f"length {length}, stride {step}", n_tokens
        )
        results.append(_result(length, step, nats, tokens, n_bytes))
    return results


def default_device() -> str:
    """`cuda` when a GPU is available, else `cpu`."""
    return "cuda" if torch.cuda.is_available() else "cpu"


__all__ = [
    "EvalResult",
    "check_eval_options",
    "default_device",
    "eval_stream",
    "evaluate",
    "score_stream",
]
