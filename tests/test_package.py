"""The package as users meet it: a light import and CLI, its public names, the Auto classes in any import order,
and a wheel (not an editable install) that finds its bundled corpus."""

from __future__ import annotations

import os
import re
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


# Written out here, not read from the parser's metadata: what a user types, by command.
TRAIN_FLAGS = (
    "corpus --text-column --tokenizer --vocab-size --max-length --stride --tokenizer-options --num-proc "
    "--skip-bad-files --val-fraction --preset --position-encoding --position-options --context-length "
    "--position-encoding-layers --nope-every --sliding-window --random-positions-max --emb-dim --n-heads --n-layers --drop-rate --output-dir --epochs --max-steps --batch-size --learning-rate "
    "--lr --weight-decay --seed --eval-every --eval-batch-size --max-eval-tokens --save-every --mixed-precision "
    "--cpu --compile --overwrite --resume --no-progress --prompt --max-new-tokens"
).split()


def help_text(command: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "hfgpt", command, "--help"],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return " ".join(done.stdout.split())


def test_train_help_shows_every_option_with_its_default():
    text = help_text("train")
    for flag in TRAIN_FLAGS:
        assert flag in text, flag
    assert "(default: 0.001)" in text and "(default: gpt2-bpe)" in text and "(default: runs/verdict)" in text


@pytest.mark.parametrize(
    "command", ["train", "generate", "eval", "compare", "attention", "tokenize", "plugins", "export"]
)
def test_every_command_shows_each_default_once(command):
    text = help_text(command)
    for option_help in re.split(r"(?= --?[a-z])|(?= [a-z]+: )", text):  # an option, or a group title
        assert option_help.count("(default:") <= 1, option_help
    assert "(default: )" not in text and "(default: None)" not in text and "(default: [])" not in text


def test_compare_takes_the_training_options_under_the_same_names_with_its_own_defaults():
    text = help_text("compare")
    for flag in (
        "--max-steps",
        "--batch-size",
        "--learning-rate",
        "--tokenizer-options",
        "--cpu",
        "--no-progress",
    ):
        assert flag in text, flag
    assert "--steps " not in text and "--position-encoding" not in text and "--prompt" not in text
    assert (
        "--max-steps MAX_STEPS stop after this many optimizer steps (default: --epochs) (default: 1500)"
        not in text
    )
    assert "(default: 1500;" in text and "(default: bpe;" in text and "(default: compare-cpu;" in text


def test_every_public_name_is_importable_from_hfgpt():
    done = python(
        "from hfgpt import *\nimport hfgpt\nprint(sorted(hfgpt.__all__))\nprint(sorted(n for n in hfgpt.__all__ if n not in globals()))"
    )
    assert done.returncode == 0, done.stderr
    names, missing = done.stdout.strip().splitlines()
    assert missing == "[]"
    for name in ("HFGPTForCausalLM", "GPT2BPETokenizer", "window", "from_gpt2", "hookimpl", "__version__"):
        assert repr(name) in names
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


def import_graph(root: Path, packages: tuple[str, ...]) -> dict[str, set[str]]:
    """Module -> the modules of `packages` it imports, from every import statement in its source (those inside
    functions too, so a cycle hidden by a late import counts). Importing a name from a package's __init__ is an
    edge to the package; a parent package run implicitly by `import a.b` is not (every module would reach it)."""
    import ast

    modules = {}
    for package in packages:
        for path in (root / package).rglob("*.py"):
            parts = path.relative_to(root).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets = [
                    f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                    for a in node.names
                ]
            graph[name] |= {t for t in map(resolve, targets) if t and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_hidden_cycle(tmp_path):
    """The check below can fail: a cycle through an import inside a function is found."""
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "a.py").write_text("from pkg.b import f\n")
    (tmp_path / "pkg" / "b.py").write_text("def f():\n    from pkg import a\n")
    assert cycles(import_graph(tmp_path, ("pkg",))) == [["pkg.a", "pkg.b"]]


def test_imports_run_one_way():
    """configuration -> strategy names -> position encodings -> modeling -> conversion, and no cycle anywhere
    in the checkout's packages, including imports made inside functions."""
    plugin_packages = tuple(str(p.relative_to(ROOT)) for p in ROOT.glob("plugins/*/hfgpt_*"))
    graph = import_graph(ROOT, ("hfgpt", *plugin_packages))
    assert cycles(graph) == []
    reaches = lambda a, b: b in graph[a]  # noqa: E731
    assert reaches("hfgpt.modeling_hfgpt", "hfgpt.position_encoding")
    assert reaches("hfgpt.convert_gpt2", "hfgpt.modeling_hfgpt")
    assert not reaches("hfgpt.configuration_hfgpt", "hfgpt.position_encoding")


def test_a_config_checks_its_strategy_by_name_without_importing_strategy_code():
    """The config is plain data: the strategy's name is checked against the registry, its class is not loaded.
    (transformers' own config module imports torch in 5.x, so torch itself cannot stay out.)"""
    done = python(
        """
        import sys
        from hfgpt.configuration_hfgpt import HFGPTConfig
        HFGPTConfig(position_encoding="rope")
        try:
            HFGPTConfig(position_encoding="no-such-strategy")
        except ValueError as error:
            print("refused:", error)
        print(sorted(m for m in sys.modules if m.startswith("hfgpt.") and "position_encoding" in m))
        """,
        env={**ENV, "HFGPT_DISABLE_PLUGIN_AUTOLOAD": "1"},
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith("refused: unknown position-encoding strategy 'no-such-strategy'")
    assert lines[-1] == "['hfgpt.default_plugins.position_encodings']"
