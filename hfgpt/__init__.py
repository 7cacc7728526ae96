"""hfgpt: the build-a-GPT-from-scratch pipeline as Hugging Face components.

    text -> tokens (hfgpt.tokenization) -> windows (hfgpt.data) -> model (modeling_hfgpt, position_encoding)
         -> training / generation (hfgpt.training, hfgpt.generation)

Importing hfgpt is cheap: the public names below load their modules on first use, and hfgpt's config,
models and tokenizers are registered with transformers' Auto classes as soon as transformers loads them
(see `hfgpt.registration`).
"""

from hfgpt import registration as _registration
from hfgpt._lazy import lazy_exports
from hfgpt.errors import HFGPTError
from hfgpt.hookspecs import hookimpl  # plugins import this before anything heavy
from hfgpt.version import __version__

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "PRESETS": "hfgpt.configuration_hfgpt",
        "HFGPTConfig": "hfgpt.configuration_hfgpt",
        "HFGPTForCausalLM": "hfgpt.modeling_hfgpt",
        "HFGPTForSequenceClassification": "hfgpt.modeling_hfgpt",
        "HFGPTModel": "hfgpt.modeling_hfgpt",
        "HFGPTPreTrainedModel": "hfgpt.modeling_hfgpt",
        "PositionEncoding": "hfgpt.position_encoding",
        "BPETokenizer": "hfgpt.tokenization.bpe",
        "GPT2BPETokenizer": "hfgpt.tokenization.bpe",
        "RegexTokenizer": "hfgpt.tokenization.regex",
        "window": "hfgpt.data.windows",
        "create_dataloader": "hfgpt.data.loader",
        "generate_text": "hfgpt.generation",
        "from_gpt2": "hfgpt.convert_gpt2",
    },
)

_registration.install()

__all__ = [
    "BPETokenizer",
    "GPT2BPETokenizer",
    "HFGPTConfig",
    "HFGPTError",
    "HFGPTForCausalLM",
    "HFGPTForSequenceClassification",
    "HFGPTModel",
    "HFGPTPreTrainedModel",
    "PRESETS",
    "PositionEncoding",
    "RegexTokenizer",
    "__version__",
    "create_dataloader",
    "from_gpt2",
    "generate_text",
    "hookimpl",
    "window",
]
