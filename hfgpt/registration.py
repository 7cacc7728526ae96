"""Registers hfgpt's classes with transformers' Auto classes, as soon as transformers loads them.

`import hfgpt` must stay light (the command line answers `--help` without importing torch), yet after it
`AutoConfig`, `AutoModel*` and `AutoTokenizer` must know hfgpt's classes. So nothing is registered at
import time: a post-import hook on transformers' three Auto modules registers hfgpt's classes right after
transformers has loaded the module (and immediately for a module that is already loaded). By the time
user code can call `AutoModelForCausalLM.from_pretrained`, its module has been imported, so hfgpt's
classes are known.

Tokenizer strategies of installed plugins are registered with `AutoTokenizer` too, by their class name,
so every tokenizer directory hfgpt writes reloads with `AutoTokenizer.from_pretrained`. (Directories also
describe themselves to processes that never import hfgpt: see `hfgpt.remote_code`.)
"""

from __future__ import annotations

import importlib.abc
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass


def _register_config() -> None:
    from transformers import AutoConfig

    from hfgpt.configuration_hfgpt import HFGPTConfig

    AutoConfig.register(HFGPTConfig.model_type, HFGPTConfig, exist_ok=True)


def _register_models() -> None:
    from transformers import AutoModel, AutoModelForCausalLM, AutoModelForSequenceClassification

    from hfgpt import modeling_hfgpt as m

    AutoModel.register(m.HFGPTConfig, m.HFGPTModel, exist_ok=True)
    AutoModelForCausalLM.register(m.HFGPTConfig, m.HFGPTForCausalLM, exist_ok=True)
    AutoModelForSequenceClassification.register(
        m.HFGPTConfig, m.HFGPTForSequenceClassification, exist_ok=True
    )


def register_tokenizer_class(tokenizer_class: type) -> None:
    """Make `AutoTokenizer` resolve directories saved with `tokenizer_class` (by its class name)."""
    from transformers import AutoTokenizer

    from hfgpt.configuration_hfgpt import HFGPTConfig

    AutoTokenizer.register(HFGPTConfig, tokenizer_class=tokenizer_class, exist_ok=True)


def _register_tokenizers() -> None:
    from hfgpt.errors import PluginError
    from hfgpt.plugins import strategies

    for registration in strategies("tokenizer").values():
        try:
            register_tokenizer_class(registration.load())
        except PluginError as exc:  # one broken plugin must not stop transformers from loading
            warnings.warn(str(exc), RuntimeWarning, stacklevel=2)


@dataclass(frozen=True)
class Hook:
    """Register with `auto_module` once it is loaded, after `module` (hfgpt's, which `register` imports)
    has finished loading: transformers' modeling code imports its Auto module itself, so that Auto module
    can finish loading while `hfgpt.modeling_hfgpt` is still being imported."""

    auto_module: str
    module: str | None
    register: Callable[[], None]


HOOKS = (
    Hook("transformers.models.auto.configuration_auto", "hfgpt.configuration_hfgpt", _register_config),
    Hook("transformers.models.auto.modeling_auto", "hfgpt.modeling_hfgpt", _register_models),
    Hook("transformers.models.auto.tokenization_auto", None, _register_tokenizers),
)
_waiting: dict[str, Hook] = {}  # hfgpt module -> the hook that runs once it has finished loading


def _initializing(name: str | None) -> bool:
    module = sys.modules.get(name) if name else None
    return module is not None and getattr(module.__spec__, "_initializing", False)


def _loaded(name: str) -> None:
    """Called when module `name` has been executed."""
    for hook in HOOKS:
        if name == hook.auto_module:
            if _initializing(hook.module):
                _waiting[hook.module] = hook
            else:
                hook.register()
    if name in _waiting:
        _waiting.pop(name).register()


WATCHED = {hook.auto_module for hook in HOOKS} | {hook.module for hook in HOOKS if hook.module}


class _RunAfterExec(importlib.abc.Loader):
    """Wraps a module's loader to report the module once it has been executed."""

    def __init__(self, loader: importlib.abc.Loader, name: str):
        self.loader, self.name = loader, name

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        self.loader.exec_module(module)
        _loaded(self.name)

    def __getattr__(self, name: str):  # get_source, get_data, ... of the real loader
        return getattr(self.loader, name)


class _WatchingFinder(importlib.abc.MetaPathFinder):
    """Finds nothing itself: it lets the other finders find a watched module, then wraps its loader."""

    def find_spec(self, fullname, path, target=None):
        if fullname not in WATCHED:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _RunAfterExec(spec.loader, fullname)
                return spec
        return None


def install() -> None:
    """Register now with the Auto modules transformers has loaded, and watch for the ones it has not."""
    if not any(isinstance(finder, _WatchingFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _WatchingFinder())
    for hook in HOOKS:
        if hook.auto_module in sys.modules and not _initializing(hook.auto_module):
            _loaded(hook.auto_module)
