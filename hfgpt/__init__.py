"""hfgpt: the build-a-GPT-from-scratch pipeline as Hugging Face components.

Importing hfgpt registers its config, models and tokenizers with transformers' Auto classes.
"""

__version__ = "0.1.0"

from hfgpt.hookspecs import hookimpl  # noqa: E402  (plugins import this before anything heavy)
from hfgpt.configuration_hfgpt import PRESETS, HFGPTConfig  # noqa: E402

# --- tokenizers (issue 3) ---
# --- model (issue 5) ---
# --- data (issue 4) ---

__all__ = ["HFGPTConfig", "PRESETS", "__version__", "hookimpl"]
