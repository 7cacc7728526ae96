"""Hook specifications: the extension points a plugin can implement.

A plugin is any module or object with functions marked ``@hfgpt.hookimpl``. Third-party plugins are
found through the entry-point group ``hfgpt``; the built-ins in ``hfgpt.default_plugins`` are
registered through the same plugin manager (see ``hfgpt.plugins``). ``register`` takes the object itself
or a ``"module:attribute"`` string that names it (imported on first use).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("hfgpt")
hookimpl = pluggy.HookimplMarker("hfgpt")


@hookspec
def register_position_encodings(register: Callable[[str, Any], None]) -> None:
    """Call ``register(name, cls)`` for each positional-encoding strategy; ``cls`` subclasses ``hfgpt.PositionEncoding``."""


@hookspec
def register_tokenizers(register: Callable[[str, Any], None]) -> None:
    """Call ``register(name, cls)`` for each tokenizer strategy: a transformers tokenizer class with a
    classmethod ``from_corpus(corpus, **options)``; its keyword parameters are the strategy's options."""
