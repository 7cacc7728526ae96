"""hfgpt: the build-a-GPT-from-scratch pipeline as Hugging Face components.

Importing hfgpt registers its config, models and tokenizers with transformers' Auto classes.
"""

__version__ = "0.1.0"

from hfgpt.configuration_hfgpt import PRESETS, HFGPTConfig  # noqa: E402
from hfgpt.hookspecs import hookimpl  # noqa: E402  (plugins import this before anything heavy)
from hfgpt.modeling_hfgpt import (  # noqa: E402
    HFGPTForCausalLM,
    HFGPTForSequenceClassification,
    HFGPTModel,
    HFGPTPreTrainedModel,
)

# --- model (issue 5) ---
from hfgpt.position_encoding import PositionEncoding  # noqa: E402

# --- tokenizers (issue 3) ---
from hfgpt.tokenization_hfgpt import RegexTokenizer  # noqa: E402
from hfgpt.tokenization_hfgpt_bpe import GPT2BPETokenizer  # noqa: E402

# --- data (issue 4) ---

__all__ = [
    "HFGPTForCausalLM",
    "HFGPTForSequenceClassification",
    "HFGPTModel",
    "HFGPTPreTrainedModel",
    "PositionEncoding",
    "GPT2BPETokenizer",
    "HFGPTConfig",
    "RegexTokenizer",
    "PRESETS",
    "__version__",
    "hookimpl",
]
