"""The plugin manager: built-in plugins first, then third-party ones from the ``hfgpt`` entry-point group.

Strategies are looked up by the name they were registered under. Those names are written into saved
configs, so a name registered twice is an error naming both plugins rather than a silent override.
Set ``HFGPT_DISABLE_PLUGIN_AUTOLOAD=1`` to skip third-party entry points (built-ins still load).

A plugin may register an object or a ``"module:attribute"`` string naming it; strings are imported on first
use, so listing plugins (``hfgpt plugins``) does not import torch for the built-ins.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import warnings
from dataclasses import dataclass, field
from typing import Any

import pluggy

from hfgpt import hookspecs
from hfgpt.errors import DuplicateStrategyError, PluginError, UnknownStrategyError
from hfgpt.version import __version__

ENTRY_POINT_GROUP = "hfgpt"
DEFAULT_PLUGINS = (
    "hfgpt.default_plugins.position_encodings",
    "hfgpt.default_plugins.tokenizers",
)
# strategy kind -> the hook that registers it
STRATEGY_HOOKS = {
    "position_encoding": "register_position_encodings",
    "tokenizer": "register_tokenizers",
}

pm = pluggy.PluginManager("hfgpt")
pm.add_hookspecs(hookspecs)


@dataclass
class Registration:
    """One registered strategy: what a plugin handed to ``register`` and which plugin handed it."""

    kind: str
    name: str
    target: Any  # the object, or a "module:attribute" string naming it
    plugin: str

    def load(self) -> Any:
        """The registered object, importing it first when it was registered by name."""
        if not isinstance(self.target, str):
            return self.target
        module, _, attribute = self.target.partition(":")
        try:
            self.target = getattr(importlib.import_module(module), attribute)
        except (ImportError, AttributeError) as exc:
            raise PluginError(
                f"plugin {self.plugin!r} registered {self.kind.replace('_', '-')} strategy {self.name!r} as "
                f"{self.target!r}, which cannot be imported ({exc}); reinstall the plugin"
            ) from None
        return self.target

    @property
    def distribution(self) -> str | None:
        """The distribution that installed the plugin; None for hfgpt's built-ins."""
        return _state.distributions.get(self.plugin, (None, None))[0]


@dataclass
class FailedPlugin:
    """A plugin that could not be loaded or whose hook raised; it is skipped, never fatal."""

    name: str
    distribution: str | None
    version: str | None
    error: str


@dataclass
class _State:
    loaded: bool = False
    distributions: dict[str, tuple[str, str]] = field(default_factory=dict)  # plugin name -> (dist, version)
    failed: dict[str, FailedPlugin] = field(default_factory=dict)
    cache_key: tuple = ()
    registry: dict[str, dict[str, Registration]] = field(default_factory=dict)


_state = _State()


def _warn_failed(failed: FailedPlugin) -> None:
    where = f" (distribution {failed.distribution} {failed.version})" if failed.distribution else ""
    warnings.warn(
        f"hfgpt plugin {failed.name!r}{where} failed and was skipped: {failed.error}. "
        "Reinstall or uninstall it; `hfgpt plugins` lists its status.",
        RuntimeWarning,
        stacklevel=3,
    )


def _fail(name: str, dist: str | None, version: str | None, error: str) -> None:
    failed = FailedPlugin(name, dist, version, error)
    _state.failed[name] = failed
    _warn_failed(failed)


def _load_entry_points() -> None:
    seen: set[str] = set()
    for dist in importlib.metadata.distributions():
        for ep in dist.entry_points:
            if ep.group != ENTRY_POINT_GROUP or ep.name in seen:
                continue
            seen.add(ep.name)
            if pm.get_plugin(ep.name) is not None or pm.is_blocked(ep.name):
                continue
            dist_name, version = dist.metadata["Name"], dist.version
            try:
                plugin = ep.load()
            except Exception as exc:  # a broken third-party plugin must not break hfgpt
                _fail(ep.name, dist_name, version, f"{type(exc).__name__}: {exc}")
                continue
            pm.register(plugin, name=ep.name)
            try:
                pm.check_pending()  # a misspelled hook name must not be silently ignored
            except pluggy.PluginValidationError as exc:
                pm.unregister(plugin, name=ep.name)
                _fail(ep.name, dist_name, version, f"PluginValidationError: {exc}")
                continue
            _state.distributions[ep.name] = (dist_name, version)


def load_plugins() -> pluggy.PluginManager:
    """Register the built-ins and the installed entry points, once, and return the plugin manager."""
    if _state.loaded:
        return pm
    _state.loaded = True
    for module_path in DEFAULT_PLUGINS:
        if pm.get_plugin(module_path) is None:
            pm.register(importlib.import_module(module_path), name=module_path)
    if not os.environ.get("HFGPT_DISABLE_PLUGIN_AUTOLOAD"):
        _load_entry_points()
    pm.check_pending()
    return pm


def _collect(kind: str) -> dict[str, Registration]:
    registry: dict[str, Registration] = {}
    caller = getattr(pm.hook, STRATEGY_HOOKS[kind])
    for impl in caller.get_hookimpls():  # in registration order: built-ins first
        if impl.plugin_name in _state.failed:
            continue

        def register(name: str, obj: Any, _plugin: str = impl.plugin_name, registry=registry) -> None:
            if not isinstance(name, str) or not name:
                raise PluginError(f"plugin {_plugin!r} registered a {kind} with an invalid name {name!r}")
            if name in registry:
                raise DuplicateStrategyError(
                    f"{kind.replace('_', '-')} strategy {name!r} is registered by both plugin {registry[name].plugin!r} "
                    f"and plugin {_plugin!r}. Names are saved in model configs, so hfgpt will not pick one "
                    "silently: uninstall one of the two plugins."
                )
            registry[name] = Registration(kind, name, obj, _plugin)

        try:
            impl.function(**{arg: register for arg in impl.argnames})
        except DuplicateStrategyError:
            raise
        except Exception as exc:
            dist, version = _state.distributions.get(impl.plugin_name, (None, None))
            _fail(impl.plugin_name, dist, version, f"{type(exc).__name__}: {exc}")
            # drop what the failing hook registered before it raised
            for stale in [n for n, r in registry.items() if r.plugin == impl.plugin_name]:
                del registry[stale]
    return registry


def strategies(kind: str) -> dict[str, Registration]:
    """All registered strategies of ``kind`` ("position_encoding" or "tokenizer"), by name."""
    if kind not in STRATEGY_HOOKS:
        raise ValueError(f"unknown strategy kind {kind!r}; expected one of {sorted(STRATEGY_HOOKS)}")
    load_plugins()
    pm.check_pending()  # also catches misspelled hooks of plugins registered in-process with pm.register
    key = tuple((name, id(plugin)) for name, plugin in pm.list_name_plugin())
    if key != _state.cache_key:
        _state.registry = {}
        _state.cache_key = key
    if kind not in _state.registry:
        _state.registry[kind] = _collect(kind)
    return _state.registry[kind]


def get_registration(kind: str, name: str) -> Registration:
    """The registration of ``name``; an unknown name lists what is installed."""
    registered = strategies(kind)
    if name not in registered:
        installed = ", ".join(sorted(registered)) or "none"
        raise UnknownStrategyError(
            f"unknown {kind.replace('_', '-')} strategy {name!r}. Installed: {installed}. "
            f"A plugin may provide it: install the distribution that registers {name!r} "
            "(`hfgpt plugins` lists what is installed)."
        )
    return registered[name]


def get_strategy(kind: str, name: str) -> Any:
    """The object registered as ``name``; an unknown name lists what is installed."""
    return get_registration(kind, name).load()


def get_position_encoding(name: str) -> Any:
    """The positional-encoding class registered as ``name``."""
    return get_strategy("position_encoding", name)


def get_tokenizer_class(name: str) -> Any:
    """The tokenizer class registered as tokenizer strategy ``name``."""
    return get_strategy("tokenizer", name)


def list_plugins() -> list[dict[str, Any]]:
    """One entry per plugin: where it comes from, whether it loaded, and what it registered."""
    load_plugins()
    by_plugin: dict[str, dict[str, list[str]]] = {}
    for kind in STRATEGY_HOOKS:
        for reg in strategies(kind).values():
            by_plugin.setdefault(reg.plugin, {}).setdefault(kind, []).append(reg.name)
    entries = []
    for name, _plugin in pm.list_name_plugin():
        if name in _state.failed:
            continue
        dist, version = _state.distributions.get(name, ("hfgpt", __version__))
        entries.append(
            {
                "name": name,
                "distribution": dist,
                "version": version,
                "builtin": name in DEFAULT_PLUGINS,
                "status": "ok",
                "registered": {kind: sorted(names) for kind, names in by_plugin.get(name, {}).items()},
            }
        )
    for failed in _state.failed.values():
        entries.append(
            {
                "name": failed.name,
                "distribution": failed.distribution,
                "version": failed.version,
                "builtin": False,
                "status": "failed",
                "error": failed.error,
                "registered": {},
            }
        )
    return entries


def reset_for_tests() -> None:
    """Forget loaded plugins so a test can load them again; not part of the public API."""
    for name, plugin in list(pm.list_name_plugin()):
        pm.unregister(plugin, name=name)
    _state.__init__()


__all__ = [
    "DEFAULT_PLUGINS",
    "DuplicateStrategyError",
    "ENTRY_POINT_GROUP",
    "PluginError",
    "Registration",
    "UnknownStrategyError",
    "get_position_encoding",
    "get_registration",
    "get_strategy",
    "get_tokenizer_class",
    "list_plugins",
    "load_plugins",
    "pm",
    "strategies",
]
