"""Loading a saved model directory with checks that turn a damaged directory into one clear error.

transformers, given a truncated `model.safetensors`, a `config.json` that is not JSON or a directory with
no tokenizer files, raises errors from deep inside (or, for the tokenizer, loads another one). The
checks here run first and name the file and the fix; whatever transformers still raises while loading
is reported as a `ModelLoadError` naming the directory.
"""

from __future__ import annotations

import json
from pathlib import Path

from hfgpt.errors import ConfigError, HFGPTError, ModelLoadError

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


def check_model_dir(directory: str | Path) -> Path:
    """Check that `directory` holds a readable config and weights; return it as a Path."""
    from safetensors import safe_open

    directory = Path(directory)
    if not (directory / "config.json").is_file():
        raise FileNotFoundError(
            f"{directory} is not a model directory (no config.json): train one with `hfgpt train "
            f"--output-dir {directory}`"
        )
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


__all__ = ["check_model_dir", "check_tokenizer_dir", "load_causal_lm"]
