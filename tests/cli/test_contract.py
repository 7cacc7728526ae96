"""The command-line contract, table-driven: every user error exits 2 with one line on stderr that names the
problem (no traceback), before any work, and changes no file outside the output directory."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import hfgpt
from hfgpt.cli import main
from hfgpt.data.sources import default_corpus_path

STORY = default_corpus_path().read_text()


@pytest.fixture(scope="module")
def good_model(tmp_path_factory) -> Path:
    """A tiny saved model with its word-level tokenizer, copied and then damaged by the cases below."""
    import torch

    path = tmp_path_factory.mktemp("good")
    tokenizer = hfgpt.RegexTokenizer.from_corpus(STORY)
    config = hfgpt.HFGPTConfig.from_preset(
        "tiny", vocab_size=len(tokenizer), tokenizer_class="RegexTokenizer"
    )
    torch.manual_seed(0)
    hfgpt.HFGPTForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def _write(path: Path, content: str | bytes) -> None:
    path.write_bytes(content if isinstance(content, bytes) else content.encode())


FILES = {  # name -> content of a corpus file the cases refer to as {name}
    "story": STORY,
    "empty": "",
    "blank": "  \n\t\n",
    "binary": b"GPT\x00\x01\x02" * 100,
    "latin1": "Café crème, déjà vu. ".encode("latin-1") * 50,
}


def damage(model: Path, how: str) -> None:
    """Damage a copy of the good model directory the way `how` says."""
    config = model / "config.json"
    weights = model / "model.safetensors"
    if how == "config not json":
        _write(config, '{"model_type": "hfgpt", ')
    elif how == "config null":
        _write(config, "null")
    elif how == "config edited":
        data = json.loads(config.read_text())
        data["position_encoding"] = "rope"  # the checkpoint holds a learned position table
        _write(config, json.dumps(data))
    elif how == "weights missing":
        weights.unlink()
    elif how == "weights a directory":
        weights.unlink()
        weights.mkdir()
    elif how == "weights truncated":
        _write(weights, weights.read_bytes()[:1000])
    elif how == "no tokenizer files":
        (model / "tokenizer_config.json").unlink()
        (model / "vocab.json").unlink()
    elif how == "no vocab":
        (model / "vocab.json").unlink()


# (argv with {placeholders}, expected fragment of the one-line message)
TRAIN = [
    (["train", "{missing}"], "does not exist"),
    (["train", "{empty}"], "the corpus is empty"),
    (["train", "{blank}"], "the corpus is empty"),
    (["train", "{binary}"], "looks binary"),
    (["train", "{latin1}"], "is not UTF-8 text"),
    (["train", "{story}", "--max-length", "0"], "--max-length must be positive, got 0"),
    (["train", "{story}", "--stride", "0"], "--stride must be positive, got 0"),
    (["train", "{story}", "--save-every", "0"], "--save-every must be positive, got 0"),
    (["train", "{story}", "--epochs", "0"], "--epochs must be positive, got 0"),
    (["train", "{story}", "--epochs", "-1"], "--epochs must be positive, got -1"),
    (["train", "{story}", "--epochs", "nan"], "--epochs must be a finite number, got nan"),
    (["train", "{story}", "--learning-rate", "inf"], "--learning-rate must be a finite number, got inf"),
    (["train", "{story}", "--max-steps", "0"], "--max-steps must be positive, got 0"),
    (["train", "{story}", "--batch-size", "0"], "--batch-size must be positive, got 0"),
    (["train", "{story}", "--val-fraction", "1.5"], "--val-fraction must be between 0 and 1"),
    (["train", "{story}", "--drop-rate", "1"], "--drop-rate must be in [0, 1), got 1.0"),
    (["train", "{story}", "--prompt", ""], "--prompt must not be empty"),
    (["train", "{story}", "--max-new-tokens", "0"], "--max-new-tokens must be positive, got 0"),
    (["train", "{story}", "--max-length", "abc"], "argument --max-length: invalid int value: 'abc'"),
    (["train", "{story}", "--mixed-precision", "fp8"], "invalid choice: 'fp8'"),
    (["train", "{story}", "--tokenizer", "nope"], "unknown tokenizer strategy 'nope'"),
    (["train", "{story}", "--position-encoding", "nope"], "unknown position-encoding strategy 'nope'"),
    (["train", "{story}", "--preset", "gpt5"], "unknown preset 'gpt5'"),
    (["train", "{story}", "--emb-dim", "30"], "emb_dim (30) must be divisible by n_heads (4)"),
    (
        ["train", "{story}", "--tokenizer", "regex", "--vocab-size", "10"],
        "'regex' tokenizer does not take vocab_size",
    ),
    (["train", "{story}", "--max-new-tokens", "100"], "knows only 64"),  # tiny: 64 positions
    (["train", "{story}", "--resume"], "nothing to resume"),
]
GENERATE = [
    (["generate", "{missing}", "Hello"], "is not a model directory"),
    (["generate", "{model}", "Hello", "--temperature", "-1"], "--temperature must be a finite number >= 0"),
    (["generate", "{model}", "Hello", "--temperature", "nan"], "--temperature must be a finite number >= 0"),
    (["generate", "{model}", "Hello", "--top-k", "0"], "--top-k must be a positive integer"),
    (
        ["generate", "{model}", "Hello", "--max-new-tokens", "0"],
        "--max-new-tokens must be a positive integer",
    ),
    (["generate", "{model}", ""], "the prompt is empty"),
    (["generate", "{model:config not json}", "Hello"], "config.json is not a readable JSON file"),
    (["generate", "{model:config null}", "Hello"], "holds NoneType, not a JSON object"),
    (["generate", "{model:config edited}", "Hello"], "do not fit the model its config describes"),
    (["generate", "{model:weights missing}", "Hello"], "has no model.safetensors"),
    (["generate", "{model:weights a directory}", "Hello"], "has no model.safetensors"),
    (["generate", "{model:weights truncated}", "Hello"], "model.safetensors cannot be read"),
    (
        ["generate", "{model:no tokenizer files}", "Hello"],
        "has no tokenizer (tokenizer_config.json is missing)",
    ),
    (["generate", "{model:no vocab}", "Hello"], "must hold its vocab.json"),
]
TOKENIZE = [
    (["tokenize", "{missing}"], "does not exist"),
    (["tokenize", "{binary}"], "looks binary"),
    (["tokenize", "{latin1}"], "is not UTF-8 text"),
    (["tokenize", "{story}", "--tokenizer", "nope"], "unknown tokenizer strategy 'nope'"),
    (["tokenize", "{story}", "--tokenizer", "regex", "--vocab-size", "9"], "does not take vocab_size"),
    (["tokenize", "{story}", "--save", "{story}"], "is a file, not a directory"),
    (["tokenize", "{story}", "--save", "{story}/sub"], "is a file, not a directory"),
    (["tokenize", "{story}", "--vocab-size", "abc"], "invalid int value"),
]


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))
    }


@pytest.mark.parametrize(
    ("argv", "expected"),
    TRAIN + GENERATE + TOKENIZE,
    ids=lambda v: " ".join(v) if isinstance(v, list) else None,
)
def test_user_errors_exit_2_with_one_line_and_change_nothing(argv, expected, tmp_path, good_model, capsys):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    places = {"missing": str(inputs / "missing.txt")}
    for name, content in FILES.items():
        _write(inputs / f"{name}.txt", content)
        places[name] = str(inputs / f"{name}.txt")
    args = []
    for arg in argv:
        if arg.startswith("{model"):
            how = arg.strip("{}").partition(":")[2]
            model = inputs / ("model-" + (how or "good").replace(" ", "-"))
            shutil.copytree(good_model, model)
            if how:
                damage(model, how)
            arg = str(model)
        args.append(arg.format(**places))
    out = tmp_path / "out"
    if argv[0] == "train":  # small and quiet, so a case that reaches the data fails fast
        args += ["--output-dir", str(out), "--no-progress"]
        for option, value in (("--preset", "tiny"), ("--tokenizer", "regex")):
            if option not in args:
                args += [option, value]
    before = snapshot(inputs)

    try:
        code = main(args)
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code
    captured = capsys.readouterr()

    assert code == 2, captured.err
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"hfgpt {argv[0]}: error: "), lines[0]
    assert expected in lines[0]
    assert snapshot(inputs) == before  # nothing outside the output directory changed
    assert not out.exists()


def test_a_real_process_prints_no_traceback(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "hfgpt", "train", "--epochs", "nan", "--output-dir", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr == "hfgpt train: error: --epochs must be a finite number, got nan\n"
