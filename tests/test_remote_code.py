"""Directories hfgpt writes load in a process that imports only transformers (`trust_remote_code=True`), with
the same logits and greedy tokens as in-process; no copy of the model code is written into them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

import hfgpt
from hfgpt.data.sources import default_corpus_path
from hfgpt.plugins import get_tokenizer_class

STORY = default_corpus_path().read_text()[:3000]
CASES = {  # name -> (position encoding, tokenizer strategy)
    "learned-regex": ("learned", "regex"),
    "rope-gpt2": ("rope", "gpt2-bpe"),
    "alibi-chars": ("alibi", "chars"),
}
PROMPT = "I had always thought"

CHILD = textwrap.dedent(
    """
    import json, sys
    import torch
    from transformers import (AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForSequenceClassification,
                              AutoTokenizer, pipeline)
    assert not [m for m in sys.modules if m.startswith("hfgpt")], "this process must not import hfgpt itself"
    results, prompt = {}, sys.argv[1]
    for directory in sys.argv[2:]:
        config = AutoConfig.from_pretrained(directory, trust_remote_code=True)
        tok = AutoTokenizer.from_pretrained(directory, trust_remote_code=True)
        model = AutoModelForCausalLM.from_pretrained(directory, trust_remote_code=True).eval()
        ids = torch.tensor([tok.encode(prompt)])
        with torch.no_grad():
            logits = model(ids).logits
            greedy = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=8, do_sample=False)
        torch.save(logits, directory + "/child-logits.pt")
        base = AutoModel.from_pretrained(directory, trust_remote_code=True)
        head = AutoModelForSequenceClassification.from_pretrained(directory, trust_remote_code=True, num_labels=2)
        generator = pipeline("text-generation", model=directory, trust_remote_code=True)
        text = generator(prompt, max_new_tokens=4, do_sample=False)[0]["generated_text"]
        results[directory] = {
            "classes": [type(o).__name__ for o in (config, tok, model, base, head)],
            "greedy": greedy[0].tolist(),
            "pipeline": text,
        }
    print(json.dumps(results))
    """
)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    directories = {}
    for name, (position_encoding, strategy) in CASES.items():
        directory = tmp_path_factory.mktemp(name)
        tokenizer = get_tokenizer_class(strategy).from_corpus([STORY])
        config = hfgpt.HFGPTConfig.from_preset(
            "tiny",
            vocab_size=len(tokenizer),
            position_encoding=position_encoding,
            eos_token_id=tokenizer.eos_token_id,
        )
        torch.manual_seed(0)
        model = hfgpt.HFGPTForCausalLM(config).eval()
        model.save_pretrained(directory)
        tokenizer.save_pretrained(directory)
        ids = torch.tensor([tokenizer.encode(PROMPT)])
        with torch.no_grad():
            logits = model(ids).logits
            greedy = model.generate(
                ids, attention_mask=torch.ones_like(ids), max_new_tokens=8, do_sample=False
            )
        directories[name] = (directory, logits, greedy[0].tolist(), type(tokenizer).__name__)
    return directories


def test_directories_load_with_trust_remote_code_in_a_process_that_never_imports_hfgpt(saved, tmp_path):
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "HF_MODULES_CACHE": str(tmp_path / "modules"),
    }
    done = subprocess.run(
        [sys.executable, "-c", CHILD, PROMPT, *(str(d) for d, *_ in saved.values())],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    for name, (directory, logits, greedy, tokenizer_class) in saved.items():
        result = results[str(directory)]
        assert result["classes"] == [
            "HFGPTConfig", tokenizer_class, "HFGPTForCausalLM", "HFGPTModel", "HFGPTForSequenceClassification"
        ], name  # fmt: skip
        assert torch.equal(torch.load(directory / "child-logits.pt"), logits), name
        assert result["greedy"] == greedy, name
        assert result["pipeline"].startswith(PROMPT.split()[0]), name


def test_the_code_files_are_thin_and_name_installed_packages(saved):
    directory = saved["alibi-chars"][0]
    for module, imported in (
        ("configuration_hfgpt", "from hfgpt.configuration_hfgpt import HFGPTConfig"),
        (
            "modeling_hfgpt",
            "from hfgpt.modeling_hfgpt import HFGPTForCausalLM, HFGPTForSequenceClassification",
        ),
        ("tokenization_hfgpt", "from hfgpt_chartok import CharTokenizer"),
    ):
        code = (directory / f"{module}.py").read_text()
        assert imported in code and len(code.splitlines()) == 3, code
    config = json.loads((directory / "config.json").read_text())
    assert config["auto_map"]["AutoModelForCausalLM"] == "modeling_hfgpt.HFGPTForCausalLM"
    assert config["position_encoding_distribution"] == "hfgpt-alibi"
    tokenizer_config = json.loads((directory / "tokenizer_config.json").read_text())
    assert tokenizer_config["auto_map"] == {"AutoTokenizer": ["tokenization_hfgpt.CharTokenizer", None]}


def test_a_missing_plugin_strategy_names_the_distribution_to_install(saved):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HFGPT_DISABLE_PLUGIN_AUTOLOAD": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "hfgpt", "generate", str(saved["alibi-chars"][0]), "I had"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 2
    assert "unknown position-encoding strategy 'alibi'" in done.stderr
    assert "pip install hfgpt-alibi" in done.stderr
