"""Loading policy: saved model directories are checked first, and weights must fit the config exactly.

transformers, given a truncated `model.safetensors`, a `config.json` that is not JSON or a directory with
no tokenizer files, raises errors from deep inside (or, for the tokenizer, loads another one), and fills
weights missing from a checkpoint with random values, only logging it. The checks here run first and name
the file and the fix (`check_model_dir`, `check_tokenizer_dir`); `strict_from_pretrained` is hfgpt's models'
`from_pretrained`, which refuses weights that do not fit; whatever transformers still raises while loading
is reported as a `ModelLoadError` naming the directory (`load_causal_lm`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from hfgpt.errors import ConfigError, HFGPTError, ModelLoadError, WeightsMismatchError

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")


def _read_json_object(path: Path, what: str) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(
            f"{path} is not a readable JSON file ({exc}): the {what} is damaged; save it again"
        ) from None
    if not isinstance(data, dict):
        raise ModelLoadError(
            f"{path} holds {type(data).__name__}, not a JSON object: the {what} is damaged; save it again"
        )
    return data


def not_a_model_dir(path: Path) -> str:
    """Why `path` is not a model directory, and the directory the user most likely meant."""
    if path.is_file():
        if (path.parent / "config.json").is_file():  # a file of a model directory, e.g. its loss_curve.png
            return (
                f"{path} is not a model directory but a file: pass the directory that holds it, {path.parent}"
            )
        return (
            f"{path} is not a model directory but a file: pass the directory `hfgpt train` or save_pretrained "
            "wrote (it holds config.json)"
        )
    if path.is_dir():
        inside = sorted(str(p.parent) for p in path.glob("*/config.json"))
        if inside:  # e.g. `hfgpt compare`'s output, one model per strategy
            more = f", ... ({len(inside)})" if len(inside) > 3 else ""
            return (
                f"{path} is not a model directory (no config.json) but holds model directories: pass one of "
                f"them, {', '.join(inside[:3])}{more}"
            )
        return (
            f"{path} is not a model directory (no config.json): pass the directory `hfgpt train` or "
            "save_pretrained wrote"
        )
    return (
        f"{path} is not a model directory: it does not exist (`hfgpt train --output-dir {path}` writes one)"
    )


def check_model_dir(directory: str | Path) -> Path:
    """Check that `directory` holds a readable config and weights; return it as a Path."""
    from safetensors import safe_open

    directory = Path(directory)
    if not (directory / "config.json").is_file():
        raise FileNotFoundError(not_a_model_dir(directory))
    _read_json_object(directory / "config.json", "model config")
    weights = directory / "model.safetensors"
    if not weights.is_file():
        if (directory / "model.safetensors.index.json").is_file():  # sharded: transformers checks the shards
            return directory
        raise ModelLoadError(
            f"{directory} has no model.safetensors (the weights): copy it back or train again"
        )
    try:
        with safe_open(str(weights), framework="pt") as handle:
            handle.keys()
    except Exception as exc:  # safetensors raises its own error types for a truncated or foreign file
        raise ModelLoadError(
            f"{weights} cannot be read ({exc}): the file is damaged; copy it back or train again"
        ) from None
    return directory


def check_tokenizer_dir(directory: str | Path) -> Path:
    """Check that `directory` holds the tokenizer saved with the model (never fall back to another one)."""
    directory = Path(directory)
    config = directory / "tokenizer_config.json"
    if not config.is_file():
        raise ModelLoadError(
            f"{directory} has no tokenizer (tokenizer_config.json is missing): save the tokenizer the model was "
            "trained with into it (`tokenizer.save_pretrained`; `hfgpt train` does)"
        )
    _read_json_object(config, "tokenizer config")
    return directory


def strict_from_pretrained(load: Callable, source, *args, **kwargs):
    """transformers' `from_pretrained` (`load`, bound to a model class), made strict.

    A local directory is checked first (`config.json` a JSON object). Every weight the config expects must be
    in the checkpoint with its shape, and the checkpoint must hold no other weight (transformers would
    initialise the missing ones randomly and only log it). `ignore_mismatched_sizes=True` accepts other
    shapes and leaves transformers' report of the re-initialised ones in the log, as in transformers; a head
    that differs from the saved architecture's (a classifier built on a causal LM, a bare body from either)
    may be new or left out. `output_loading_info=True` returns transformers' report of missing and
    unexpected weights instead of raising: the caller asked to inspect it.
    """
    from transformers.utils import logging as hf_logging

    if isinstance(source, (str, os.PathLike)):
        _check_local_source(os.fspath(source))
    return_info = kwargs.pop("output_loading_info", False)
    ignore_mismatched = kwargs.pop("ignore_mismatched_sizes", False)
    verbosity = hf_logging.get_verbosity()
    if not (ignore_mismatched or return_info):  # its load report: the check below says it in one line
        hf_logging.set_verbosity_error()
    try:
        model, info = load(
            source,
            *args,
            ignore_mismatched_sizes=True,  # shapes are checked below, with a clearer message
            output_loading_info=True,
            **kwargs,
        )
    finally:
        hf_logging.set_verbosity(verbosity)
    if return_info:
        return model, info
    check_loaded_weights(model, info, source, ignore_mismatched)
    return model


def _check_local_source(source: str) -> None:
    """A path that names a local directory (or was meant to) gets a local error, not the Hub's repo-id one.

    A Hub repo id is `name` or `namespace/name`: anything else (an absolute path, `./x`, `a/b/c`, an existing
    file) is a local path. `Path` would drop the `./` that says so."""
    path = Path(source)
    if path.is_dir():
        if (path / "config.json").is_file():
            _read_json_object(path / "config.json", "model config")
        return
    if path.exists() or path.is_absolute() or source.startswith(".") or len(path.parts) > 2:
        raise ModelLoadError(not_a_model_dir(path))


def check_loaded_weights(model, info: dict, source, ignore_mismatched: bool) -> None:
    """Raise `WeightsMismatchError` naming the tensors when a checkpoint does not fit the model built from
    its config; see `strict_from_pretrained`."""
    saved = model.config.architectures or []
    new_head = saved and type(model).__name__ not in saved  # e.g. a classifier loaded from a causal LM
    body = f"{model.base_model_prefix}."

    def counts(key: str) -> bool:  # a new head's own weights may be missing, the old head's unexpected
        if not new_head:
            return True
        if model.base_model is model:  # a bare body: checkpoint keys lose their prefix, heads stay outside
            return key.split(".", 1)[0] in model._modules
        return key.startswith(body)

    missing = sorted(k for k in info["missing_keys"] if counts(k))
    unexpected = sorted(k for k in info["unexpected_keys"] if counts(k))
    mismatched = [] if ignore_mismatched else sorted(info["mismatched_keys"])
    if not (missing or unexpected or mismatched):
        return

    def some(keys: list[str]) -> str:
        return ", ".join(keys[:4]) + (", ..." if len(keys) > 4 else "")

    problems = []
    if missing:
        problems.append(f"{len(missing)} weight(s) the config expects are missing ({some(missing)})")
    if unexpected:
        problems.append(f"{len(unexpected)} weight(s) the config has no place for ({some(unexpected)})")
    if mismatched:
        shapes = ", ".join(
            f"{k}: {tuple(a)} in the checkpoint, {tuple(b)} in the model" for k, a, b in mismatched[:3]
        )
        problems.append(f"{len(mismatched)} weight(s) of another shape ({shapes})")
    raise WeightsMismatchError(
        f"the weights in {source} do not fit the model its config describes: {'; '.join(problems)}. The "
        "checkpoint is damaged or config.json was edited: restore both from the run that wrote them "
        "(or pass ignore_mismatched_sizes=True to re-initialise weights of another shape)."
    )


def load_causal_lm(directory: str | Path, position_options: dict | None = None):
    """`(model, tokenizer)` from a directory written by `hfgpt train` or `save_pretrained`, checked first.

    `position_options` are merged into the saved `position_encoding_kwargs` for this load only: options that
    change no weight, such as a rope model's context extension (`{"scaling": "yarn", "factor": 4.0}`).
    """
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    directory = check_tokenizer_dir(check_model_dir(directory))
    hf_logging.disable_progress_bar()  # a few tensors: a bar per load is noise on the command line
    try:
        extra = {}
        if position_options:
            config = AutoConfig.from_pretrained(directory)
            if not hasattr(config, "position_encoding_kwargs"):
                raise ConfigError(
                    f"the model in {directory} ({config.model_type}) has no positional-strategy options: "
                    "leave the position options out"
                )
            config.position_encoding_kwargs = {**(config.position_encoding_kwargs or {}), **position_options}
            extra["config"] = config
        model = AutoModelForCausalLM.from_pretrained(directory, **extra)
        return model, AutoTokenizer.from_pretrained(directory)
    except HFGPTError:
        raise
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as exc:
        message = " ".join(str(exc).split())[:300]
        raise ModelLoadError(f"cannot load the model in {directory}: {message}") from exc
    finally:
        hf_logging.enable_progress_bar()


__all__ = [
    "check_loaded_weights",
    "check_model_dir",
    "check_tokenizer_dir",
    "load_causal_lm",
    "not_a_model_dir",
    "strict_from_pretrained",
]
