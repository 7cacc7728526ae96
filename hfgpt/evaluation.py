"""Held-out evaluation of a causal language model: loss, perplexity and bits per byte at several lengths.

The text is prepared the way `window()` prepares training text: every document is tokenized with the model's
own tokenizer (no special tokens added) and the documents are joined into one token stream, separated by the
tokenizer's EOS. Every token of the stream except the first is scored exactly once (the first has no
context to be predicted from), so all lengths and both protocols score the same tokens and their numbers
compare directly.

Windows hold `length` input tokens, and every input position predicts the token after it, the last one
included: the targets of window at `begin` are tokens `begin + 1 .. begin + length`, the pairs `window()`
trains on. Windows start every `stride` tokens (`stride = length`, the default, is non-overlapping
windows) and a window scores only the targets no earlier window scored; the others get label -100. This is
the algorithm of transformers' perplexity guide run on windows of `length + 1` tokens whose last token is
only a target, so the model never sees more than `length` tokens and no token is lost where two windows
meet. With `stride < length` each scored token (past the first window) is predicted from at least
`length - stride + 1` tokens of context.

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
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from hfgpt.data.sources import as_dataset, check_text_column, iter_texts
from hfgpt.errors import ConfigError, DataError
from hfgpt.position_encoding import max_positions


@dataclass(frozen=True)
class EvalResult:
    """The evaluation at one length.

    Args:
        length (`int`): input tokens per window.
        stride (`int`): tokens between window starts (`length`: non-overlapping windows).
        tokens (`int`): tokens scored (the stream's tokens but its first); 0 when `encodable` is False.
        bytes (`int`): UTF-8 bytes of the documents that have a token (see the module docstring).
        loss (`float`, *optional*): mean cross-entropy in nats per scored token; None when not encodable.
        perplexity (`float`, *optional*): `exp(loss)`.
        bits_per_byte (`float`, *optional*): summed cross-entropy in bits over `bytes`.
        encodable (`bool`): False when the model's positions cannot encode `length` tokens.
        reason (`str`, *optional*): why the length was not evaluated.
    """

    length: int
    stride: int
    tokens: int
    bytes: int
    loss: float | None
    perplexity: float | None
    bits_per_byte: float | None
    encodable: bool = True
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TokenizedText:
    """The evaluation stream: the documents' ids joined with EOS, and the UTF-8 bytes of those documents."""

    ids: np.ndarray
    bytes: int
    documents: int


def check_eval_options(
    lengths: Sequence[int] | int | None, stride: int | None = None, batch_size: int = 8
) -> list[int] | None:
    """Validate the options before any work; return the lengths without duplicates, in the given order.

    `lengths=None` (not known yet: the model's context length) checks only the stride and batch size.
    """

    def positive(value: Any) -> bool:
        return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value > 0

    if stride is not None and not positive(stride):
        raise ConfigError(f"--stride must be a positive integer, got {stride!r}")
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
        raise ConfigError(
            f"--stride ({stride}) must not exceed the evaluation length ({min(lengths)}): a larger stride "
            "would skip tokens. Leave --stride out for non-overlapping windows"
        )
    return list(dict.fromkeys(int(length) for length in lengths))


def tokenize_for_eval(
    tokenizer, source: Any, text_column: str = "text", batch_size: int = 1000
) -> TokenizedText:
    """Tokenize the documents of `source` into one stream joined with EOS, counting their UTF-8 bytes.

    `source`: a text, a list of texts, a `pathlib.Path` (or a list of them) or a `datasets.Dataset` /
    `IterableDataset` with a `text_column` (as for `window()`).
    """
    dataset = as_dataset(source, text_column)
    if not hasattr(dataset, "select_columns") or isinstance(dataset, dict):
        raise DataError("evaluate one split: pass dataset['test'] (or another split), not a DatasetDict")
    check_text_column(dataset, text_column)
    separator = getattr(tokenizer, "eos_token_id", None)
    pieces: list[np.ndarray] = []
    n_bytes = documents = 0
    for batch in _batched(iter_texts(dataset, text_column, batch_size), batch_size):
        encoded = tokenizer(batch, add_special_tokens=False)["input_ids"]
        for text, ids in zip(batch, encoded):
            if not ids:  # like window(): a document with no tokens adds nothing, not even a separator
                continue
            if pieces and separator is not None:
                pieces.append(np.array([separator], dtype=np.int64))
            pieces.append(np.asarray(ids, dtype=np.int64))
            n_bytes += len(text.encode("utf-8"))
            documents += 1
    if not pieces:
        raise DataError("the evaluation text is empty (no tokens): pass files that contain text")
    return TokenizedText(ids=np.concatenate(pieces), bytes=n_bytes, documents=documents)


def _batched(items: Iterable[str], size: int) -> Iterable[list[str]]:
    batch: list[str] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def window_starts(n_tokens: int, length: int, stride: int) -> np.ndarray:
    """Window starts 0, stride, 2 * stride, ... up to the first window that reaches the stream's last token."""
    last = n_tokens - 1  # index of the last target
    count = max(0, -(-(last - length) // stride)) + 1  # windows until begin + length >= last
    return np.arange(count, dtype=np.int64) * stride


def score_stream(
    model,
    ids: np.ndarray | torch.Tensor,
    length: int,
    stride: int,
    batch_size: int = 8,
    progress: bool = False,
    desc: str | None = None,
) -> tuple[float, int]:
    """`(summed cross-entropy in nats, tokens scored)` of the stream's tokens but the first, in windows.

    See the module docstring for the windows. Windows are gathered and the sum kept on the model's device,
    read back once at the end: no step waits for the device to hand back a number.
    """
    from tqdm.auto import tqdm

    device = next(model.parameters()).device
    stream = torch.as_tensor(np.asarray(ids), dtype=torch.long)
    n = stream.numel()
    if n < 2:
        raise DataError(f"the evaluation text has {n} token(s): at least 2 are needed (one to predict from)")
    # Padding past the end lets every window gather `length + 1` tokens; padded targets are never scored.
    stream = torch.cat([stream, stream.new_full((length + 1,), int(stream[-1]))]).to(device)
    starts = torch.from_numpy(window_starts(n, length, stride)).to(device)
    offsets = torch.arange(length + 1, device=device)
    # A window scores targets it is the first to reach: past the previous window's last target
    # (begin - stride + length), and only real tokens (index <= n - 1).
    first_new = torch.where(starts == 0, 0, length - stride)
    accumulate = torch.float32 if device.type == "mps" else torch.float64
    total = torch.zeros((), dtype=accumulate, device=device)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for i in tqdm(range(0, len(starts), batch_size), desc=desc, disable=not progress, unit="batch"):
                begin = starts[i : i + batch_size]
                window = stream[begin[:, None] + offsets]
                inputs, targets = window[:, :-1], window[:, 1:]
                position = offsets[:-1]
                scored = (position >= first_new[i : i + batch_size, None]) & (
                    begin[:, None] + position + 1 <= n - 1
                )
                logits = model(input_ids=inputs, use_cache=False).logits
                nats = F.cross_entropy(
                    logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none"
                )
                total += torch.where(scored.reshape(-1), nats, 0.0).sum(dtype=accumulate)
    finally:
        model.train(was_training)
    return float(total), n - 1


def _result(length: int, stride: int, nats: float, tokens: int, n_bytes: int) -> EvalResult:
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
) -> list[EvalResult]:
    """Loss, perplexity and bits per byte of held-out text at each length (see the module docstring).

    Args:
        model: a causal language model (`HFGPTForCausalLM` or any transformers `*ForCausalLM`), on the
            device to evaluate on.
        tokenizer: the model's tokenizer.
        texts_or_dataset: a text, a list of texts, a `pathlib.Path` (or a list of them), a
            `datasets.Dataset` with a `text_column` (e.g. `hfgpt.data.sources.load_corpus(...)`), or a
            `TokenizedText` from `tokenize_for_eval` (to score the same text with several models).
        lengths (`int` or a sequence of `int`): input tokens per window, one result each.
        stride (`int`, *optional*): tokens between window starts, at most the smallest length; None (the
            default) for non-overlapping windows (stride = length).
        batch_size (`int`, defaults to 8): windows per forward pass.
        text_column (`str`, defaults to `"text"`): the column holding the text.
        progress (`bool`, defaults to `False`): show a progress bar per length.

    Returns:
        One `EvalResult` per length, in order. A length the model's positions cannot encode (e.g. past a
        `learned` model's context length) is not run: its result has `encodable=False` and a `reason`.
    """
    lengths = check_eval_options(lengths, stride, batch_size)
    text = (
        texts_or_dataset
        if isinstance(texts_or_dataset, TokenizedText)
        else tokenize_for_eval(tokenizer, texts_or_dataset, text_column)
    )
    limit = max_positions(model.config)
    results = []
    for length in lengths:
        step = stride or length
        if limit is not None and length > limit:
            strategy = getattr(model.config, "position_encoding", model.config.model_type)
            reason = f"position encoding {strategy!r} cannot encode {length} positions (it knows {limit})"
            results.append(EvalResult(length, step, 0, text.bytes, None, None, None, False, reason))
            continue
        nats, tokens = score_stream(
            model, text.ids, length, step, batch_size, progress, desc=f"length {length}, stride {step}"
        )
        results.append(_result(length, step, nats, tokens, text.bytes))
    return results


def default_device() -> str:
    """`cuda` when a GPU is available, else `cpu`."""
    return "cuda" if torch.cuda.is_available() else "cpu"


__all__ = [
    "EvalResult",
    "TokenizedText",
    "check_eval_options",
    "default_device",
    "evaluate",
    "score_stream",
    "tokenize_for_eval",
    "window_starts",
]
