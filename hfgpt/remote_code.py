"""Model and tokenizer directories that describe themselves to processes that never import hfgpt.

`Auto*.from_pretrained(directory, trust_remote_code=True)` imports the classes that a directory's `auto_map`
names from code files in the directory. hfgpt writes that `auto_map` into config.json and
tokenizer_config.json, and thin code files that import the classes from the installed packages (no copy of
the model code), so lm-evaluation-harness or any HF-based tool loads the directory wherever hfgpt is
installed. This module imports nothing of hfgpt: the config and the tokenizers call it when they save.
"""

from __future__ import annotations

import json

MODEL_AUTO_MAP = {
    "AutoConfig": "configuration_hfgpt.HFGPTConfig",
    "AutoModel": "modeling_hfgpt.HFGPTModel",
    "AutoModelForCausalLM": "modeling_hfgpt.HFGPTForCausalLM",
    "AutoModelForSequenceClassification": "modeling_hfgpt.HFGPTForSequenceClassification",
}
SHIM_HEADER = (
    "# Written by hfgpt so that transformers can load this directory with trust_remote_code=True in a process\n"
    "# that never imports hfgpt. It imports the classes from the installed packages (pip install hfgpt).\n"
)


def _write_shim(directory: str, module: str, imports: dict[str, list[str]]) -> None:
    lines = [
        f"from {source} import {', '.join(sorted(names))}  # noqa: F401" for source, names in imports.items()
    ]
    with open(f"{directory}/{module}.py", "w", encoding="utf-8") as f:
        f.write(SHIM_HEADER + "\n".join(lines) + "\n")


def write_model_code(directory: str) -> None:
    """The code files a model directory's `auto_map` names (the config carries `MODEL_AUTO_MAP`)."""
    _write_shim(directory, "configuration_hfgpt", {"hfgpt.configuration_hfgpt": ["HFGPTConfig"]})
    classes = [entry.split(".")[1] for name, entry in MODEL_AUTO_MAP.items() if name != "AutoConfig"]
    _write_shim(directory, "modeling_hfgpt", {"hfgpt.modeling_hfgpt": classes})


def write_tokenizer_code(directory: str, tokenizer_class: type) -> None:
    """Add `auto_map` to tokenizer_config.json and write the code file it names."""
    path = f"{directory}/tokenizer_config.json"
    with open(path, encoding="utf-8") as f:
        config = json.load(f)
    config["auto_map"] = {"AutoTokenizer": [f"tokenization_hfgpt.{tokenizer_class.__name__}", None]}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2, ensure_ascii=False)
        f.write("\n")
    _write_shim(directory, "tokenization_hfgpt", {tokenizer_class.__module__: [tokenizer_class.__name__]})
