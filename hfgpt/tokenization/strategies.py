"""Tokenizer strategies: tokenizer classes, registered by name, built from a corpus.

A strategy is a transformers tokenizer class with a classmethod `from_corpus(corpus, **options)`; the
keyword parameters of `from_corpus` are the options the strategy takes, so an option it does not take is
refused before any work starts.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any

from hfgpt.errors import ConfigError


def strategy_options(tokenizer_class: type) -> dict[str, Any]:
    """The options a tokenizer strategy takes: the keyword parameters of its `from_corpus`, with defaults."""
    parameters = list(inspect.signature(tokenizer_class.from_corpus).parameters.values())[1:]  # after corpus
    return {p.name: p.default for p in parameters if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}


def fixed_vocabulary(tokenizer_class: type) -> bool:
    """Whether a strategy's vocabulary is fixed (GPT-2's), not learned from the corpus: its tokenizer exists
    before the corpus is split, so the split can count tokens. A class says so with `fixed_vocabulary = True`."""
    return bool(getattr(tokenizer_class, "fixed_vocabulary", False))


def check_strategy_options(name: str, tokenizer_class: type, options: dict[str, Any]) -> None:
    """Refuse options the strategy does not take, naming the ones it does."""
    accepted = strategy_options(tokenizer_class)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        takes = ", ".join(accepted) or "no options"
        raise ConfigError(f"the {name!r} tokenizer does not take {', '.join(unknown)}; it takes: {takes}")


def build_tokenizer(name: str, corpus: Iterable[str] | None = None, **options):
    """Build tokenizer strategy `name` (see `hfgpt plugins`) from `corpus` with `options`.

    The class is registered with `AutoTokenizer`, so what it saves reloads in this process too (a plugin
    registered in-process is not known to the registration that ran when transformers loaded).
    """
    from hfgpt.plugins import get_tokenizer_class
    from hfgpt.registration import register_tokenizer_class

    tokenizer_class = get_tokenizer_class(name)
    check_strategy_options(name, tokenizer_class, options)
    register_tokenizer_class(tokenizer_class)
    return tokenizer_class.from_corpus(corpus, **options)


__all__ = ["build_tokenizer", "check_strategy_options", "fixed_vocabulary", "strategy_options"]
