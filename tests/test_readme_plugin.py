"""The README's "Writing a plugin" example works as written: installed, discovered, trained, saved, loaded."""

import re
import textwrap
from pathlib import Path

import torch

import hfgpt
from hfgpt import plugins

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_plugin_sources() -> tuple[str, str]:
    section = README.read_text().split("## Writing a plugin", 1)[1].split("\n## ", 1)[0]
    toml = re.search(r"```toml\n(.*?)```", section, re.S).group(1)
    python = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    return toml, python


def test_readme_plugin_example(tmp_path, monkeypatch):
    toml, python = readme_plugin_sources()
    name = re.search(r'^name = "(.+)"', toml, re.M).group(1)
    entry, module = re.search(r"\[project.entry-points.hfgpt\]\n(\S+) = \"(\S+)\"", toml).groups()
    # Install it the way pip does: the module plus a .dist-info holding the entry point.
    (tmp_path / f"{module}.py").write_text(python)
    info = tmp_path / f"{module}-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(f"[hfgpt]\n{entry} = {module}\n"))
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
