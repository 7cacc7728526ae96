"""Generation: continue a prompt with a trained model (`hfgpt generate`, the sample after `hfgpt train`).

A layer over transformers' `generate()` that checks the request before any work (an empty prompt, options
that contradict each other or would be ignored, a temperature too small to sample with) and keeps the
user's prompt verbatim in the output. On top of `generate()`:

* stop strings, found in the decoded text (so they work with every tokenizer, word-level ones included),
  the output cut before the first one;
* streaming to a file as tokens arrive, writing exactly the text that is returned;
* models with a fixed context (hfgpt's `learned` table, GPT-2's `n_positions`) keep generating past it the
  way the book's `generate_text_simple` does: each new token is predicted from the last `context` tokens.
  A KV cache cannot slide over a learned position table (every token's position changes when the window
  moves), so that case runs its own loop, with transformers' logits processors so the options mean the same.

Importing this module imports neither torch nor transformers (`hfgpt generate --help` stays instant).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from typing import TextIO

from hfgpt.errors import ConfigError, ModelInputError

# Sampling divides the logits by the temperature in float32 (transformers casts them before its processors):
# a logit of magnitude L overflows to inf below L / 3.4e38 (float32's largest), and softmax then gives NaN
# ("probability tensor contains inf/nan"). Temperatures from MIN_TEMPERATURE up keep logits as large as
# LOGIT_BOUND finite, a bound far above what trained models emit (tens to hundreds); below it, moderate
# logits soon fail (at 1e-38 every logit beyond 3.4 overflows).
LOGIT_BOUND = 1e8
MIN_TEMPERATURE = 1e-30


def plural(count: int, word: str) -> str:
    """`1 token`, `2 tokens`."""
    return f"{count} {word}{'' if count == 1 else 's'}"


def _positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_temperature(temperature) -> None:
    """A finite number >= 0 (0: greedy), not positive yet too small to sample with."""
    if not _number(temperature) or temperature < 0:
        raise ConfigError(f"--temperature must be a finite number >= 0 (0 = greedy), got {temperature!r}")
    if 0 < temperature < MIN_TEMPERATURE:
        raise ConfigError(
            f"--temperature {temperature!r} is too small to sample with (logits / temperature overflows float32): "
            f"use --greedy, or a temperature >= {MIN_TEMPERATURE:g}"
        )


def check_generation_options(
    max_new_tokens: int,
    temperature: float = 0.0,
    top_k: int | None = None,
    *,
    top_p: float | None = None,
    repetition_penalty: float | None = None,
    num_return_sequences: int = 1,
    stop: Sequence[str] = (),
) -> None:
    """Refuse options that are out of range, contradict each other or would be silently ignored.

    `temperature` 0 is greedy decoding; `top_k`, `top_p` and several sequences only mean something when
    sampling (`temperature` > 0).
    """
    if not _positive_int(max_new_tokens):
        raise ConfigError(f"--max-new-tokens must be a positive integer, got {max_new_tokens!r}")
    check_temperature(temperature)
    if top_k is not None and not _positive_int(top_k):
        raise ConfigError(f"--top-k must be a positive integer, got {top_k!r}")
    if top_p is not None and not (_number(top_p) and 0 < top_p <= 1):
        raise ConfigError(f"--top-p must be a number in (0, 1] (1 keeps every token), got {top_p!r}")
    if repetition_penalty is not None and not (_number(repetition_penalty) and repetition_penalty > 0):
        raise ConfigError(
            f"--repetition-penalty must be a number > 0 (1 = none, > 1 discourages repeats), got {repetition_penalty!r}"
        )
    if not _positive_int(num_return_sequences):
        raise ConfigError(f"--num-return-sequences must be a positive integer, got {num_return_sequences!r}")
    if isinstance(stop, str) or not all(isinstance(s, str) and s for s in stop):
        raise ConfigError(f"--stop takes non-empty strings (one per --stop), got {stop!r}")
    if temperature == 0:
        ignored = " and ".join(
            name for name, value in (("--top-k", top_k), ("--top-p", top_p)) if value is not None
        )
        if ignored:
            verb = "apply" if " and " in ignored else "applies"
            raise ConfigError(
                f"{ignored} only {verb} when sampling, and decoding is greedy: add --temperature "
                f"(e.g. --temperature 1.0) or drop {ignored}"
            )
        if num_return_sequences > 1:
            raise ConfigError(
                f"--num-return-sequences {num_return_sequences} with greedy decoding gives {num_return_sequences} "
                "identical texts: add --temperature to sample, or drop --num-return-sequences"
            )


def prompt_ids(tokenizer, prompt: str) -> list[int]:
    """The prompt's token ids; an empty prompt (or one with no tokens) is an error."""
    check_prompt(prompt)
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    if not ids:
        raise ModelInputError(
            f"the prompt {prompt!r} encodes to no tokens: give the model some text to continue"
        )
    return ids


def check_prompt(prompt) -> None:
    """An empty or blank prompt is an error (checked before a model is loaded)."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise ModelInputError("the prompt is empty: give the model some text to continue")


def check_fits(n_prompt: int, max_new_tokens: int, max_positions: int | None, position_encoding: str) -> None:
    """Refuse a prompt plus new tokens longer than the positions the model can encode (None: any length)."""
    if max_positions is not None and n_prompt + max_new_tokens > max_positions:
        raise ModelInputError(
            f"the prompt is {plural(n_prompt, 'token')} and {plural(max_new_tokens, 'new token')} would make "
            f"{n_prompt + max_new_tokens}, but this model ({position_encoding!r} positions) knows only "
            f"{max_positions}. Shorten the prompt or lower --max-new-tokens."
        )


def context_note(n_prompt: int, max_new_tokens: int, limit: int | None) -> str | None:
    """What to tell the user when generation will run past the model's context (None: it will not)."""
    if limit is None or n_prompt + max_new_tokens <= limit:
        return None
    note = f"the model knows {limit} positions: continuing with the last {limit} tokens as context"
    if n_prompt > limit:
        note = f"the prompt is {plural(n_prompt, 'token')} and {note}"
    return note


class Detokenizer:
    """The text of a continuation, the prompt kept verbatim.

    The new tokens are decoded together with the prompt's (a word-level tokenizer joins pieces with spaces
    and glues punctuation, a byte-level one may complete a character across the boundary) and the decoded
    prompt is replaced by the user's own text. Decoding stops after the first end-of-text token (batched
    sequences that finished early are padded with it). Special tokens are kept in the text.

    Args:
        tokenizer: the model's tokenizer.
        prompt (`str`): the user's prompt.
        prompt_ids (`list[int]`): its ids.
        eos_token_id (`int | list[int] | None`): the end-of-text id(s).
    """

    def __init__(self, tokenizer, prompt: str, prompt_ids: list[int], eos_token_id=None):
        self.tokenizer, self.prompt, self.prompt_ids = tokenizer, prompt, list(prompt_ids)
        self.decoded_prompt = self.decode(self.prompt_ids)
        eos = eos_token_id if isinstance(eos_token_id, (list, tuple)) else [eos_token_id]
        self.eos = {i for i in eos if i is not None}
        # a tokenizer that drops whitespace (word-level) loses a trailing space of the prompt; the text then
        # continues after the user's space rather than adding its own
        self.lossy_end = self.decoded_prompt != prompt and prompt[-1:].isspace()

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=False)

    def until_eos(self, new_ids: list[int]) -> list[int]:
        for i, token in enumerate(new_ids):
            if token in self.eos:
                return new_ids[: i + 1]
        return new_ids

    def continuation(self, new_ids: list[int]) -> str:
        """The text the new tokens add after the prompt."""
        new_ids = self.until_eos(list(new_ids))
        if not new_ids:
            return ""
        full = self.decode(self.prompt_ids + new_ids)
        if full.startswith(self.decoded_prompt):
            text = full[len(self.decoded_prompt) :]
        else:
            text = " " + self.decode(new_ids)
        return text.lstrip() if self.lossy_end else text


def find_stop(text: str, stop: Sequence[str]) -> int | None:
    """Where the first of the stop strings starts in `text` (None: none occurs)."""
    found = [i for i in (text.find(s) for s in stop) if i >= 0]
    return min(found) if found else None


def cut_at_stop(text: str, stop: Sequence[str]) -> str:
    index = find_stop(text, stop)
    return text if index is None else text[:index]


class StopStrings:
    """A transformers stopping criterion: a sequence is done once its new text contains a stop string.

    transformers' own `StopStringCriteria` precomputes each token's string from the vocabulary, which fails on
    word-level tokenizers (their tokens join with spaces, and its probe text is not in their vocabulary);
    decoding the tail of the new tokens works with any tokenizer. Only the last tokens are decoded (enough
    to hold the longest stop string), so a step costs the same however long the text grows.

    Args:
        tokenizer: the model's tokenizer.
        stop (`Sequence[str]`): the stop strings.
        n_prompt (`int`): the prompt's length in tokens; the prompt itself never stops generation.
    """

    def __init__(self, tokenizer, stop: Sequence[str], n_prompt: int):
        self.tokenizer, self.stop, self.n_prompt = tokenizer, list(stop), n_prompt
        # every token decodes to at least one byte (a word-level one to at least one character), so this many
        # tokens hold any stop string; a few more for a character split across tokens
        self.tail = max(len(s.encode("utf-8")) for s in self.stop) + 4

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        done = [
            find_stop(self.tokenizer.decode(row[self.n_prompt :][-self.tail :].tolist()), self.stop)
            is not None
            for row in input_ids
        ]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


class TextStream:
    """A transformers streamer writing the first sequence's text to `file` as its tokens arrive.

    It writes the prompt at once, then only text that cannot change any more: a stop string found ends it
    (cut before), and the tail is held back while it could still change: an incomplete UTF-8 character, the
    beginning of a stop string, trailing whitespace (a word-level tokenizer removes the space before
    punctuation that comes next). `finish(text)` writes the rest of the final text, so what was written is
    exactly the text returned. `TextStreamer` prints what the tokens decode to, without the prompt kept
    verbatim, stop strings or this holding back.

    Args:
        file (`TextIO`): where to write (flushed after each piece).
        detokenizer (`Detokenizer`): turns new ids into the continuation's text.
        stop (`Sequence[str]`): the stop strings.
    """

    def __init__(self, file: TextIO, detokenizer: Detokenizer, stop: Sequence[str] = ()):
        self.file, self.detokenizer, self.stop = file, detokenizer, list(stop)
        self.new_ids: list[int] = []
        self.written = ""
        self.prompt_seen = False
        self.stopped = False
        self.anchor, self.anchored = 0, ""  # the continuation of new_ids[:anchor], complete characters

    def continuation(self) -> str:
        """`detokenizer.continuation(new_ids)`, at a cost that does not grow with the text.

        Only the tokens after the anchor are decoded, after a few before it that they may join with
        (a word-level tokenizer's spacing, a byte-level character split across tokens): what they add to
        those is what they add to the whole text. If that fails to hold, the whole text is decoded.
        """
        detokenizer = self.detokenizer
        ids = detokenizer.until_eos(self.new_ids)
        text = None
        if self.anchor:
            end = len(detokenizer.prompt_ids) + self.anchor
            before = (detokenizer.prompt_ids + ids)[max(0, end - 4) : end]
            base, full = detokenizer.decode(before), detokenizer.decode(before + ids[self.anchor :])
            if full.startswith(base) and not base.endswith("\ufffd"):
                text = self.anchored + full[len(base) :]
        if text is None:
            text = detokenizer.continuation(ids)
        if not text.endswith("\ufffd"):
            self.anchor, self.anchored = len(ids), text
        return text

    def write_upto(self, text: str) -> None:
        if text.startswith(self.written) and len(text) > len(self.written):
            self.file.write(text[len(self.written) :])
            self.file.flush()
            self.written = text

    def put(self, value) -> None:
        if not self.prompt_seen:  # generate() hands over the prompt's ids first
            self.prompt_seen = True
            self.write_upto(self.detokenizer.prompt)
            return
        if self.stopped:
            return
        self.new_ids.append(int(value.reshape(-1)[0]))
        text = self.continuation()
        index = find_stop(text, self.stop)
        if index is not None:
            self.stopped = True
            self.write_upto(self.detokenizer.prompt + text[:index])
            return
        text = text.rstrip("\ufffd")
        held = max((n for s in self.stop for n in range(1, len(s)) if text.endswith(s[:n])), default=0)
        text = text[: len(text) - held].rstrip()
        self.write_upto(self.detokenizer.prompt + text)

    def end(self) -> None:
        """Nothing here: the caller writes the end of the final text with `finish`."""

    def finish(self, text: str) -> None:
        if text.startswith(self.written):
            self.write_upto(text)
        else:  # a tokenizer whose decoding changed text already written: give the final text in full
            self.file.write("\n" + text)
            self.file.flush()


def generation_settings(
    model,
    max_new_tokens: int,
    temperature: float,
    top_k: int | None,
    top_p: float | None,
    repetition_penalty: float | None,
    num_return_sequences: int,
) -> dict:
    """The keyword arguments of `generate()`: every decoding option explicit, so a model's saved generation
    config (transformers' default top-k of 50, say) changes nothing."""
    eos = model.generation_config.eos_token_id
    if eos is None:
        eos = model.config.eos_token_id
    pad = model.generation_config.pad_token_id
    settings = dict(
        do_sample=temperature > 0,
        max_new_tokens=max_new_tokens,
        pad_token_id=pad if pad is not None else (eos[0] if isinstance(eos, list) else eos),
        eos_token_id=eos,
        repetition_penalty=1.0 if repetition_penalty is None else float(repetition_penalty),
        num_return_sequences=num_return_sequences,
    )
    if temperature > 0:
        settings.update(
            temperature=float(temperature), top_k=top_k or 0, top_p=1.0 if top_p is None else float(top_p)
        )
    return settings


def logits_processors(settings: dict):
    """transformers' processors for `settings`, in `generate()`'s order (penalty, temperature, top-k, top-p)."""
    from transformers import (
        LogitsProcessorList,
        RepetitionPenaltyLogitsProcessor,
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    processors = LogitsProcessorList()
    if settings["repetition_penalty"] != 1.0:
        processors.append(RepetitionPenaltyLogitsProcessor(settings["repetition_penalty"]))
    if settings["do_sample"]:
        if settings["temperature"] != 1.0:
            processors.append(TemperatureLogitsWarper(settings["temperature"]))
        if settings["top_k"]:
            processors.append(TopKLogitsWarper(settings["top_k"]))
        if settings["top_p"] < 1.0:
            processors.append(TopPLogitsWarper(settings["top_p"]))
    return processors


def generate_cropped(model, input_ids, settings: dict, context: int, stopping_criteria=(), streamer=None):
    """Generate with at most `context` tokens of context, as the book's `generate_text_simple` does.

    While the sequence fits, steps reuse the KV cache (the prompt is read once); past the context, each step
    runs the model on the last `context` tokens afresh, since their positions have moved. Logits processors,
    sampling, end-of-text padding, stopping criteria and the streamer behave as in `generate()`.

    Args:
        model: a causal LM.
        input_ids (`torch.LongTensor` of shape `(1, prompt_length)`): the prompt.
        settings (`dict`): from `generation_settings`.
        context (`int`): the most tokens the model may see.
        stopping_criteria: callables `(input_ids, scores) -> bool tensor (batch,)`.
        streamer: a transformers streamer.

    Returns:
        `torch.LongTensor` of shape `(num_return_sequences, prompt_length + new)`.
    """
    import torch

    processors = logits_processors(settings)
    eos = settings["eos_token_id"]
    eos = torch.tensor(
        eos if isinstance(eos, list) else [] if eos is None else [eos], device=input_ids.device
    )
    pad = settings["pad_token_id"]
    if streamer is not None:
        streamer.put(input_ids.cpu())
    ids = input_ids.repeat_interleave(settings["num_return_sequences"], dim=0)
    unfinished = torch.ones(ids.shape[0], dtype=torch.bool, device=ids.device)
    cache = None
    for _ in range(settings["max_new_tokens"]):
        if ids.shape[1] <= context:
            step = ids if cache is None else ids[:, -1:]
            outputs = model(step, cache=cache, use_cache=True)
            cache = outputs.cache
        else:
            cache = None
            outputs = model(ids[:, -context:], use_cache=False)
        scores = processors(ids, outputs.logits[:, -1].float())
        if settings["do_sample"]:
            next_tokens = torch.multinomial(torch.softmax(scores, dim=-1), num_samples=1).squeeze(1)
        else:
            next_tokens = scores.argmax(dim=-1)
        if eos.numel() and pad is not None:
            next_tokens = torch.where(unfinished, next_tokens, torch.full_like(next_tokens, pad))
        ids = torch.cat([ids, next_tokens[:, None]], dim=-1)
        if streamer is not None:
            streamer.put(next_tokens.cpu())
        if eos.numel():
            unfinished &= ~torch.isin(next_tokens, eos)
        for criterion in stopping_criteria:
            unfinished &= ~criterion(ids, scores)
        if not unfinished.any():
            break
    if streamer is not None:
        streamer.end()
    return ids


def generate_texts(
    model,
    tokenizer,
    prompt: str,
    max_new_tokens: int = 50,
    temperature: float = 0.0,
    top_k: int | None = None,
    seed: int | None = None,
    *,
    top_p: float | None = None,
    repetition_penalty: float | None = None,
    num_return_sequences: int = 1,
    stop: Sequence[str] = (),
    stream: TextIO | None = None,
    note: Callable[[str], None] | None = None,
) -> list[str]:
    """Continue `prompt` `num_return_sequences` times; each text starts with the prompt itself.

    Greedy when `temperature` is 0, else sampling with temperature, `top_k` and `top_p`. A `repetition_penalty`
    > 1 makes tokens already in the text less likely (both modes). Each text ends before its first stop
    string. With `stream`, the first text is written there as it is generated (exactly the text returned).
    A model with a fixed context continues past it from its last `context` tokens; `note` (default: stderr)
    is told so once.
    """
    import torch

    check_generation_options(
        max_new_tokens,
        temperature,
        top_k,
        top_p=top_p,
        repetition_penalty=repetition_penalty,
        num_return_sequences=num_return_sequences,
        stop=stop,
    )
    ids = prompt_ids(tokenizer, prompt)
    settings = generation_settings(
        model, max_new_tokens, temperature, top_k, top_p, repetition_penalty, num_return_sequences
    )
    from hfgpt.position_encoding import max_positions

    limit = max_positions(model.config)
    message = context_note(len(ids), max_new_tokens, limit)
    if message is not None:
        (note or (lambda text: print(text, file=sys.stderr)))(message)
    detokenizer = Detokenizer(tokenizer, prompt, ids, settings["eos_token_id"])
    criteria = [StopStrings(tokenizer, stop, len(ids))] if stop else []
    streamer = TextStream(stream, detokenizer, stop) if stream is not None else None
    if seed is not None:
        torch.manual_seed(seed)
    input_ids = torch.tensor([ids], device=model.device)
    model.eval()
    with torch.no_grad():
        if message is not None:
            output = generate_cropped(model, input_ids, settings, limit, criteria, streamer)
        else:
            extra = {"stopping_criteria": criteria} if criteria else {}
            output = model.generate(
                input_ids, attention_mask=torch.ones_like(input_ids), streamer=streamer, **settings, **extra
            )
    texts = [prompt + cut_at_stop(detokenizer.continuation(row[len(ids) :].tolist()), stop) for row in output]
    if streamer is not None:
        streamer.finish(texts[0])
    return texts


def generate_text(
    model,
    tokenizer,
    prompt: str,
    max_new_tokens: int = 50,
    temperature: float = 0.0,
    top_k: int | None = None,
    seed: int | None = None,
    **options,
) -> str:
    """Continue `prompt`; greedy when `temperature` is 0, else temperature (and top-k) sampling.

    The text returned starts with the prompt itself. `options`: those of `generate_texts` (`top_p`,
    `repetition_penalty`, `stop`, `stream`, `note`), one sequence.
    """
    return generate_texts(model, tokenizer, prompt, max_new_tokens, temperature, top_k, seed, **options)[0]


__all__ = [
    "Detokenizer",
    "MIN_TEMPERATURE",
    "StopStrings",
    "TextStream",
    "check_fits",
    "check_generation_options",
    "check_prompt",
    "context_note",
    "generate_cropped",
    "generate_text",
    "generate_texts",
    "prompt_ids",
]
