"""The package as users meet it: a light import and CLI, its public names, the Auto classes in any import order,
and a wheel (not an editable install) that finds its bundled corpus."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import textwrap
import venv
from pathlib import Path

import pytest

import hfgpt

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def python(code: str, *, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env or ENV,
        cwd=cwd,
        timeout=300,
    )


HEAVY = "sorted(m for m in ('torch', 'transformers', 'datasets', 'tiktoken') if m in sys.modules)"


def test_import_hfgpt_imports_nothing_heavy():
    done = python(f"import sys, hfgpt; print({HEAVY})")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"], ["generate", "--help"], ["plugins"]])
def test_help_and_plugin_listing_import_neither_torch_nor_transformers(argv):
    # Third-party plugins may import what they need; the built-ins register lazily.
    env = {**ENV, "HFGPT_DISABLE_PLUGIN_AUTOLOAD": "1"}
    done = python(
        f"""
        import sys
        from hfgpt.cli import main
        try:
            main({argv!r})
        except SystemExit:
            pass
        print({HEAVY})
        """,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_train_help_shows_every_option_with_its_help_and_default():
    from dataclasses import fields

    from hfgpt.training.arguments import TrainArguments

    done = subprocess.run(
        [sys.executable, "-m", "hfgpt", "train", "--help"],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=60,
    )
    text = " ".join(done.stdout.split())
    for f in fields(TrainArguments):
        flag = f.metadata["flags"][0] if f.metadata["flags"] else f"--{f.name.replace('_', '-')}"
        flag = f.metadata["negative_flag"] or (f.name if f.metadata["positional"] else flag)
        assert flag in text, flag
        assert " ".join(f.metadata["help"].split()) in text, f.name
    assert "(default: 0.002)" in text and "(default: gpt2-bpe)" in text and "(default: runs/verdict)" in text


def test_every_public_name_is_importable_from_hfgpt():
    for name in hfgpt.__all__:
        assert getattr(hfgpt, name) is not None, name
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        hfgpt.Nope  # noqa: B018


ORDERS = {
    "hfgpt first": "import hfgpt\nfrom transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer",
    "transformers first": "from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer\nimport hfgpt",
    "model class first": (
        "from hfgpt.modeling_hfgpt import HFGPTForCausalLM\n"
        "from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer"
    ),
    "Trainer first": (
        "from transformers import Trainer\nimport hfgpt\n"
        "from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer"
    ),
}


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    import torch

    directory = tmp_path_factory.mktemp("model")
    tokenizer = hfgpt.RegexTokenizer.from_corpus("a tiny corpus for a tiny model .")
    config = hfgpt.HFGPTConfig.from_preset("tiny", vocab_size=len(tokenizer))
    torch.manual_seed(0)
    hfgpt.HFGPTForCausalLM(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.mark.parametrize("order", ORDERS)
def test_auto_classes_know_hfgpt_in_any_import_order(order, saved_model):
    done = python(
        ORDERS[order]
        + f"""
directory = {str(saved_model)!r}
print(type(AutoConfig.from_pretrained(directory)).__name__)
print(type(AutoModelForCausalLM.from_pretrained(directory)).__name__)
print(type(AutoTokenizer.from_pretrained(directory)).__name__)
"""
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["HFGPTConfig", "HFGPTForCausalLM", "RegexTokenizer"]


def test_a_wheel_install_trains_on_its_bundled_corpus_from_another_directory(tmp_path):
    pytest.importorskip("setuptools", reason="builds the wheel without build isolation (offline)")
    dist, env_dir, work = tmp_path / "dist", tmp_path / "env", tmp_path / "elsewhere"
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(dist),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = dist.glob("hfgpt-*.whl")

    # A fresh environment that reuses the installed dependencies (a .pth line adds them to its path, after
    # its own site-packages), with hfgpt installed from the wheel alone.
    venv.create(env_dir, with_pip=False)
    env_python = env_dir / "bin" / "python"
    site = Path(
        subprocess.check_output(
            [str(env_python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]
        )
        .decode()
        .strip()
    )
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    installed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-index",
            "--target",
            str(site),
            str(wheel),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert installed.returncode == 0, installed.stderr[-3000:]

    work.mkdir()
    env = {**ENV, "HFGPT_DISABLE_PLUGIN_AUTOLOAD": "1"}
    env.pop("PYTHONPATH", None)
    where = subprocess.run(
        [str(env_python), "-c", "import hfgpt; print(hfgpt.__file__)"],
        capture_output=True,
        text=True,
        cwd=work,
        env=env,
    )
    assert where.stdout.strip().startswith(str(site)), (
        where.stdout + where.stderr
    )  # the wheel, not the checkout
    out = work / "out"
    trained = subprocess.run(
        [str(env_python), "-m", "hfgpt", "train", "--preset", "tiny", "--epochs", "1", "--output-dir", str(out),
         "--no-progress", "--max-new-tokens", "5"],
        capture_output=True,
        text=True,
        cwd=work,
        env=env,
        timeout=600,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert "sample: Every effort moves you" in trained.stdout
    assert (out / "model.safetensors").exists() and (out / "config.json").exists()
