"""The errors hfgpt raises for problems a user can fix.

Every one derives from `HFGPTError`, so the command line catches that one class (with `OSError`) and prints
the message as a single line, exit status 2. Each subclass also derives from the built-in exception it
replaces (`ValueError`, `FileExistsError`, ...), so `except ValueError` keeps working.

A message names the problem and the fix: "--max-length must be a positive integer, got 0" rather than
"invalid value".
"""

from __future__ import annotations


class HFGPTError(Exception):
    """Base class of every error hfgpt raises for a problem the user can fix."""


class ConfigError(HFGPTError, ValueError):
    """An option or configuration value of the wrong type or out of range."""


class DataError(HFGPTError, ValueError):
    """A corpus, dataset or file whose content cannot be used (empty, binary, not UTF-8, too short...)."""


class TokenizerError(HFGPTError, ValueError):
    """A tokenizer that cannot be built or loaded, or input it cannot encode or decode."""


class TokenizerInputError(HFGPTError, TypeError):
    """Input of a type a tokenizer cannot encode (bytes, numbers, mixed ids and text...)."""


class ModelLoadError(HFGPTError, ValueError):
    """A model directory that is damaged: files missing, unreadable or not what they should be."""


class WeightsMismatchError(ModelLoadError, RuntimeError):
    """Weights that do not fit the model a config describes (missing, unexpected or of another shape).

    Also a `RuntimeError`, the error transformers raises for weights of another shape."""


class ModelInputError(HFGPTError, ValueError):
    """Inputs a model cannot run on (empty, ids outside the vocabulary, longer than its positions)."""


class OutputDirError(HFGPTError, FileExistsError):
    """An output directory that holds a model which must not be overwritten, or cannot be written."""


class ResumeError(HFGPTError, FileNotFoundError):
    """`--resume` without a usable checkpoint of an interrupted run."""


class PluginError(HFGPTError):
    """Base class for plugin problems."""


class UnknownStrategyError(PluginError, ValueError):
    """A strategy name that no installed plugin registered."""


class DuplicateStrategyError(PluginError):
    """Two plugins registered the same strategy name."""


__all__ = [
    "ConfigError",
    "DataError",
    "DuplicateStrategyError",
    "HFGPTError",
    "ModelInputError",
    "ModelLoadError",
    "OutputDirError",
    "PluginError",
    "ResumeError",
    "TokenizerError",
    "TokenizerInputError",
    "WeightsMismatchError",
    "UnknownStrategyError",
]
