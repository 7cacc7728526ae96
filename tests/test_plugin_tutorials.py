"""The plugin tutorials work as written: the README's positional-encoding plugin and docs/plugins.md's
tokenizer plugin are installed, discovered, trained with, saved and reloaded."""

import os
import re
import subprocess
import sys
from pathlib import Path

import torch

import hfgpt
from hfgpt import plugins

ROOT = Path(__file__).resolve().parents[1]


def plugin_sources(document: Path, section: str) -> tuple[str, str]:
    """The pyproject.toml and Python module of the example in `section` of `document`."""
    text = document.read_text().split(section, 1)[1].split("\n## ", 1)[0]
    toml = re.search(r"```toml\n(.*?)```", text, re.S).group(1)
    python = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    return toml, python


def install(toml: str, python: str, where: Path) -> str:
    """Install the example the way pip does: the module plus a .dist-info holding the entry point."""
    name = re.search(r'^name = "(.+)"', toml, re.M).group(1)
    entry, module = re.search(r"\[project.entry-points.hfgpt\]\n(\S+) = \"(\S+)\"", toml).groups()
    (where / f"{module}.py").write_text(python)
    info = where / f"{module}-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(f"[hfgpt]\n{entry} = {module}\n")
    return name


def test_readme_plugin_example(tmp_path, monkeypatch):
    name = install(*plugin_sources(ROOT / "README.md", "## Writing a plugin"), tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    plugins.reset_for_tests()
    try:
        (listed,) = [p for p in plugins.list_plugins() if p["distribution"] == name]
        assert listed["registered"] == {"position_encoding": ["scaled"]}

        torch.manual_seed(0)
        config = hfgpt.HFGPTConfig.from_preset(
            "tiny", vocab_size=50, position_encoding="scaled", drop_rate=0.0
        )
        model = hfgpt.HFGPTForCausalLM(config)
        ids = torch.randint(0, 50, (2, 16))
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
        first = model(ids, labels=ids).loss
        for _ in range(5):
            loss = model(ids, labels=ids).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        assert loss.item() < first.item()
        assert model.transformer.position_encoding.scale.grad is not None  # the plugin's parameter trains

        model.save_pretrained(tmp_path / "model")
        assert '"position_encoding": "scaled"' in (tmp_path / "model" / "config.json").read_text()
        loaded = hfgpt.HFGPTForCausalLM.from_pretrained(tmp_path / "model").eval()
        assert torch.equal(loaded(ids).logits, model.eval()(ids).logits)
    finally:
        plugins.reset_for_tests()


def test_docs_tokenizer_plugin_example_trains_and_reloads_in_a_fresh_process(tmp_path):
    site, out = tmp_path / "site", tmp_path / "run"
    site.mkdir()
    install(*plugin_sources(ROOT / "docs" / "plugins.md", "## A complete tokenizer plugin"), site)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
           "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}  # fmt: skip
    hfgpt_cli = [sys.executable, "-m", "hfgpt"]
    trained = subprocess.run(
        [*hfgpt_cli, "train", "--tokenizer", "lowercase", "--preset", "tiny", "--max-length", "32",
         "--epochs", "1", "--no-progress", "--max-new-tokens", "3", "--output-dir", str(out)],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-3000:]
    reloaded = subprocess.run(
        [sys.executable, "-c", "import sys, hfgpt; from transformers import AutoTokenizer; "
         "tok = AutoTokenizer.from_pretrained(sys.argv[1]); print(type(tok).__name__, tok.tokenize('Every EFFORT'))",
         str(out)],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert reloaded.returncode == 0, reloaded.stderr[-3000:]
    assert reloaded.stdout.split(maxsplit=1) == ["LowercaseTokenizer", "['every', 'effort']\n"]
    generated = subprocess.run(
        [*hfgpt_cli, "generate", str(out), "Every effort", "--max-new-tokens", "3"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert generated.returncode == 0, generated.stderr[-3000:]
    assert generated.stdout.startswith("Every effort")
