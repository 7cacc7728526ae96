"""Generation: continue a prompt with a trained model (`hfgpt generate`, the sample after `hfgpt train`).

A thin layer over transformers' `generate()`: it checks the request before any work (an empty prompt, a
negative or NaN temperature, more tokens than the positions the model can encode) and keeps the user's
prompt verbatim in the output.
"""

from __future__ import annotations

import math

from hfgpt.errors import ConfigError, ModelInputError


def check_generation_options(max_new_tokens: int, temperature: float = 0.0, top_k: int | None = None) -> None:
    """Refuse sampling options that would silently mean something else."""
    if not isinstance(max_new_tokens, int) or isinstance(max_new_tokens, bool) or max_new_tokens <= 0:
        raise ConfigError(f"--max-new-tokens must be a positive integer, got {max_new_tokens!r}")
    if not isinstance(temperature, (int, float)) or not math.isfinite(temperature) or temperature < 0:
        raise ConfigError(f"--temperature must be a finite number >= 0 (0 = greedy), got {temperature!r}")
    if top_k is not None and (not isinstance(top_k, int) or top_k <= 0):
        raise ConfigError(f"--top-k must be a positive integer, got {top_k!r}")


def prompt_ids(tokenizer, prompt: str) -> list[int]:
    """The prompt's token ids; an empty prompt (or one with no tokens) is an error."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise ModelInputError("the prompt is empty: give the model some text to continue")
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    if not ids:
        raise ModelInputError(
            f"the prompt {prompt!r} encodes to no tokens: give the model some text to continue"
        )
    return ids


def check_fits(n_prompt: int, max_new_tokens: int, max_positions: int | None, position_encoding: str) -> None:
    """Refuse a prompt plus new tokens longer than the positions the model can encode (None: any length)."""
    if max_positions is not None and n_prompt + max_new_tokens > max_positions:
        raise ModelInputError(
            f"the prompt is {n_prompt} tokens and {max_new_tokens} new tokens would make "
            f"{n_prompt + max_new_tokens}, but this model ({position_encoding!r} positions) knows only "
            f"{max_positions}. Shorten the prompt or lower --max-new-tokens."
        )


def generate_text(
    model,
    tokenizer,
    prompt: str,
    max_new_tokens: int = 50,
    temperature: float = 0.0,
    top_k: int | None = None,
    seed: int | None = None,
) -> str:
    """Continue `prompt`; greedy when `temperature` is 0, else temperature (and top-k) sampling.

    The text returned starts with the prompt itself.
    """
    import torch

    check_generation_options(max_new_tokens, temperature, top_k)
    ids = torch.tensor([prompt_ids(tokenizer, prompt)], device=model.device)
    limit = model.transformer.position_encoding.max_positions
    check_fits(ids.shape[1], max_new_tokens, limit, model.config.position_encoding)
    if seed is not None:
        torch.manual_seed(seed)
    sampling = temperature > 0
    options = dict(do_sample=sampling, max_new_tokens=max_new_tokens, pad_token_id=model.config.eos_token_id)
    if sampling:
        options.update(temperature=temperature, top_k=top_k or 0)
    model.eval()
    with torch.no_grad():
        output = model.generate(ids, attention_mask=torch.ones_like(ids), **options)
    text = tokenizer.decode(output[0], skip_special_tokens=False)
    if not text.startswith(
        prompt
    ):  # word-level tokenizers normalise spacing: keep the user's prompt verbatim
        text = prompt + " " + tokenizer.decode(output[0, ids.shape[1] :], skip_special_tokens=False)
    return text


__all__ = ["check_fits", "check_generation_options", "generate_text", "prompt_ids"]
