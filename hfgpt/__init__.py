"""hfgpt: the build-a-GPT-from-scratch pipeline as Hugging Face components.

Importing hfgpt registers its config, models and tokenizers with transformers' Auto classes.
"""

__version__ = "0.1.0"

from hfgpt.configuration_hfgpt import PRESETS, HFGPTConfig  # noqa: E402
from hfgpt.hookspecs import hookimpl  # noqa: E402  (plugins import this before anything heavy)

# --- tokenizers (issue 3) ---
from hfgpt.tokenization_hfgpt import RegexTokenizer  # noqa: E402
from hfgpt.tokenization_hfgpt_bpe import GPT2BPETokenizer  # noqa: E402

# --- model (issue 5) ---
# --- data (issue 4) ---

__all__ = ["GPT2BPETokenizer", "HFGPTConfig", "RegexTokenizer", "PRESETS", "__version__", "hookimpl"]
