"""The command-line contract, table-driven, for every command: a user error exits 2 with exactly one line on
stderr that names the problem (the option or the file) and the fix, prints no traceback and nothing on stdout,
and changes no file anywhere (the test's whole directory and the shared models are snapshotted, sizes and
mtimes, before and after); every `--flag` a message names is an option of the command it is given for.

Most cases run in this process through `hfgpt.cli.main` (fast); a few run as real processes (exit status,
tracebacks), and the unwritable output directories run in a private mount namespace where the directory is a
read-only bind mount (as root, whom permissions do not stop), or behind `chmod` otherwise.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import hfgpt
from hfgpt.cli import build_parser, main
from hfgpt.data.sources import default_corpus_path

STORY = default_corpus_path().read_text()
PARAGRAPHS = [p for p in STORY.split("\n") if p.strip()]
ENV = {
    **os.environ,
    "HF_HUB_OFFLINE": "1",
    "OMP_NUM_THREADS": "1",
    "PYTHONPATH": str(Path(hfgpt.__file__).parents[1]),
}


def _jsonl(rows: list) -> str:
    return "".join(json.dumps({"text": row}) + "\n" for row in rows)


def _csv(rows: list[str]) -> str:
    return "text\n" + "".join('"' + row.replace('"', '""') + '"\n' for row in rows)  # "": null


FILES = {  # name -> content of an input file the cases refer to as {name}
    "story.txt": STORY,
    "empty.txt": "",
    "blank.txt": "  \n\t\n",
    "binary.txt": b"GPT\x00\x01\x02" * 100,
    "latin1.txt": "Café crème, déjà vu. ".encode("latin-1") * 50,
    "short.txt": "I HAD always thought Jack Gisburn rather a cheap genius",
    "3k.txt": STORY[:3000],
    "null.jsonl": _jsonl([PARAGRAPHS[0], PARAGRAPHS[1], None, PARAGRAPHS[2]]),
    "number.jsonl": _jsonl([PARAGRAPHS[0], 42, PARAGRAPHS[1]]),
    "numbers.jsonl": _jsonl([1, 2, 3]),
    "empty-string.jsonl": _jsonl([PARAGRAPHS[0], "", PARAGRAPHS[1]]),
    "objects.json": json.dumps([{"text": {"body": p}} for p in PARAGRAPHS[:3]]),
    "malformed.jsonl": _jsonl([PARAGRAPHS[0]]) + '{"text": "cut off\n' + _jsonl([PARAGRAPHS[1]]),
    "body.jsonl": "".join(json.dumps({"body": p}) + "\n" for p in PARAGRAPHS[:3]),
    "empty-cell.csv": _csv([PARAGRAPHS[0], PARAGRAPHS[1], "", PARAGRAPHS[2]]),
    "afile": "not a directory\n",
}


def build_models(root: Path) -> Path:
    """Tiny saved models in `root`: `learned`, `rope` and `sinusoidal`, 2 layers, 64 positions, with a
    word-level tokenizer, and a loss_curve.png in `learned` as `hfgpt train` leaves one."""
    import torch

    tokenizer = hfgpt.RegexTokenizer.from_corpus(STORY)
    for strategy in ("learned", "rope", "sinusoidal"):
        config = hfgpt.HFGPTConfig.from_preset(
            "tiny",
            vocab_size=len(tokenizer),
            n_layers=2,
            position_encoding=strategy,
            eos_token_id=tokenizer.eos_token_id,
            tokenizer_class="RegexTokenizer",
        )
        torch.manual_seed(0)
        hfgpt.HFGPTForCausalLM(config).save_pretrained(root / strategy)
        tokenizer.save_pretrained(root / strategy)
    (root / "learned" / "loss_curve.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    return root


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    """The tiny models, shared by every case (snapshotted, so a case that changed one fails); cases that damage
    one get a copy."""
    return build_models(tmp_path_factory.mktemp("models"))


def _write(path: Path, content: str | bytes) -> None:
    path.write_bytes(content if isinstance(content, bytes) else content.encode())


def damage(model: Path, how: str) -> None:
    """Damage a copy of a model directory the way `how` says."""
    config = model / "config.json"
    weights = model / "model.safetensors"
    if how == "config not json":
        _write(config, '{"model_type": "hfgpt", ')
    elif how == "config null":
        _write(config, "null")
    elif how == "config 42":
        _write(config, "42")
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
    else:
        raise ValueError(how)


# (argv with {placeholders}, fragments the one line must hold: the problem with the option or file, the fix)
TRAIN = [
    (["train", "{missing}"], ["corpus file {missing} does not exist", "check the path"]),
    (["train", "{in}/*.nothing"], ["no files match", "check the path or the glob pattern"]),
    (["train", "{empty.txt}"], ["the corpus is empty"]),
    (["train", "{blank.txt}"], ["the corpus is empty"]),
    (["train", "{binary.txt}"], ["{binary.txt} looks binary", "--skip-bad-files"]),
    (["train", "{latin1.txt}"], ["{latin1.txt} is not UTF-8 text", "iconv", "--skip-bad-files"]),
    (
        ["train", "{empty-cell.csv}"],
        ["{empty-cell.csv} row 3: the 'text' column holds null", "--skip-bad-files"],
    ),
    (["train", "{null.jsonl}"], ["{null.jsonl} row 3: the 'text' column holds null", "--skip-bad-files"]),
    (["train", "{number.jsonl}"], ["{number.jsonl} row 2", "holds a number (42)", "--skip-bad-files"]),
    (["train", "{numbers.jsonl}"], ["{numbers.jsonl} row 1", "holds a number (1)", "--text-column"]),
    (
        ["train", "{empty-string.jsonl}"],
        ["{empty-string.jsonl} row 2", "an empty string", "--skip-bad-files"],
    ),
    (["train", "{objects.json}"], ["{objects.json} row 1", "holds an object", "--text-column"]),
    (["train", "{malformed.jsonl}"], ["{malformed.jsonl} cannot be read as JSON (line 2,", "fix the file"]),
    (["train", "{body.jsonl}"], ["{body.jsonl} has no 'text' column (columns: body)", "--text-column"]),
    (
        ["train", "{numbers.jsonl}", "--skip-bad-files"],
        ["no text left to read", "{numbers.jsonl} row 1 holds a number"],
    ),
    (["train", "{short.txt}"], ["the corpus is too short to hold out 65 bytes", "(--max-length)"]),
    (
        ["train", "{3k.txt}"],  # enough bytes to hold out, too few tokens for a window of 64 tokens
        ["validation split: the corpus is too short for one window", "smaller max_length (--max-length)"],
    ),
    (["train", "{story.txt}", "--max-length", "0"], ["--max-length must be positive, got 0"]),
    (["train", "{story.txt}", "--stride", "0"], ["--stride must be positive, got 0"]),
    (["train", "{story.txt}", "--save-every", "0"], ["--save-every must be positive, got 0"]),
    (["train", "{story.txt}", "--epochs", "0"], ["--epochs must be positive, got 0"]),
    (["train", "{story.txt}", "--epochs", "-1"], ["--epochs must be positive, got -1"]),
    (["train", "{story.txt}", "--epochs", "nan"], ["--epochs must be a finite number, got nan"]),
    (
        ["train", "{story.txt}", "--learning-rate", "inf"],
        ["--learning-rate must be a finite number, got inf"],
    ),
    (["train", "{story.txt}", "--max-steps", "0"], ["--max-steps must be positive, got 0"]),
    (["train", "{story.txt}", "--batch-size", "0"], ["--batch-size must be positive, got 0"]),
    (["train", "{story.txt}", "--val-fraction", "1.5"], ["--val-fraction must be between 0 and 1"]),
    (["train", "{story.txt}", "--drop-rate", "1"], ["--drop-rate must be in [0, 1), got 1.0"]),
    (["train", "{story.txt}", "--prompt", ""], ["--prompt must not be empty"]),
    (["train", "{story.txt}", "--max-new-tokens", "0"], ["--max-new-tokens must be positive, got 0"]),
    (["train", "{story.txt}", "--max-length", "abc"], ["argument --max-length: invalid int value: 'abc'"]),
    (
        ["train", "{story.txt}", "--max-length", "99999999999999999999999"],
        ["--max-length 99999999999999999999999 is longer than the 64 positions", "lower --max-length"],
    ),
    (["train", "{story.txt}", "--mixed-precision", "fp8"], ["invalid choice: 'fp8'"]),
    (["train", "{story.txt}", "--tokenizer", "nope"], ["unknown tokenizer strategy 'nope'"]),
    (["train", "{story.txt}", "--position-encoding", "nope"], ["unknown position-encoding strategy 'nope'"]),
    (["train", "{story.txt}", "--position-options", "[1]"], ["--position-options: must be a JSON object"]),
    (["train", "{story.txt}", "--tokenizer-options", "{"], ["--tokenizer-options: must be a JSON object"]),
    (["train", "{story.txt}", "--preset", "gpt5"], ["unknown preset 'gpt5'"]),
    (["train", "{story.txt}", "--emb-dim", "30"], ["emb_dim (30) must be divisible by n_heads (4)"]),
    (
        ["train", "{story.txt}", "--tokenizer", "regex", "--vocab-size", "10"],
        ["'regex' tokenizer does not take vocab_size"],
    ),
    (["train", "{story.txt}", "--max-new-tokens", "100"], ["knows only 64"]),  # tiny: 64 positions
    (["train", "{story.txt}", "--resume"], ["nothing to resume"]),
    (["train", "{story.txt}", "--output-dir", ""], ["--output-dir must not be empty"]),
    (
        ["train", "{story.txt}", "--output-dir", "{afile}"],
        ["--output-dir {afile} exists and is not a directory (a file)", "choose another --output-dir"],
    ),
    (
        ["train", "{story.txt}", "--output-dir", "{afile}/run"],
        ["--output-dir {afile}/run: {afile} is a file", "choose another --output-dir"],
    ),
    (
        ["train", "{story.txt}", "--output-dir", "{learned}"],
        ["{learned} already holds a trained model", "--overwrite", "--output-dir"],
    ),
]
EVAL = [
    (
        ["eval", "{in}/nothing", "{story.txt}"],
        ["{in}/nothing is not a model directory: it does not exist", "hfgpt train --output-dir"],
    ),
    (
        ["eval", "{learned}/loss_curve.png"],
        [
            "{learned}/loss_curve.png is not a model directory but a file",
            "the directory that holds it, {learned}",
        ],
    ),
    (
        ["eval", "{models}"],
        [
            "{models} is not a model directory (no config.json) but holds model directories",
            "pass one of them",
            "{learned}",
        ],
    ),
    (["eval", "{model:config null}"], ["config.json holds NoneType, not a JSON object", "save it again"]),
    (["eval", "{model:config 42}"], ["config.json holds int, not a JSON object", "save it again"]),
    (["eval", "{model:weights truncated}"], ["model.safetensors cannot be read", "train again"]),
    (["eval", "{model:no tokenizer files}"], ["has no tokenizer (tokenizer_config.json is missing)"]),
    (["eval", "{learned}", "{missing}"], ["corpus file {missing} does not exist"]),
    (["eval", "{learned}", "{empty.txt}"], ["the evaluation text is empty", "pass files that contain text"]),
    (["eval", "{learned}", "{binary.txt}"], ["{binary.txt} looks binary", "--skip-bad-files"]),
    (
        ["eval", "{learned}", "{latin1.txt}"],
        ["{latin1.txt} is not UTF-8 text", "or leave it out (--skip-bad-files)"],
    ),
    (
        ["eval", "{learned}", "{latin1.txt}", "--skip-bad-files"],
        ["no text left to read: every corpus file was skipped", "{latin1.txt} is not UTF-8 text"],
    ),
    (
        ["eval", "{learned}", "{numbers.jsonl}"],
        ["{numbers.jsonl} row 1", "holds a number (1)", "--text-column"],
    ),
    (
        ["eval", "{learned}", "{number.jsonl}"],
        ["{number.jsonl} row 2", "holds a number (42)", "--skip-bad-files"],
    ),
    (["eval", "{learned}", "{null.jsonl}"], ["{null.jsonl} row 3", "holds null", "--skip-bad-files"]),
    (["eval", "{learned}", "{empty-cell.csv}"], ["{empty-cell.csv} row 3", "holds null", "--skip-bad-files"]),
    (["eval", "{learned}", "{objects.json}"], ["{objects.json} row 1", "holds an object", "--text-column"]),
    (
        ["eval", "{learned}", "{malformed.jsonl}"],
        ["{malformed.jsonl} cannot be read as JSON (line 2,", "--skip-bad-files"],
    ),
    (["eval", "{learned}", "{body.jsonl}"], ["has no 'text' column (columns: body)", "--text-column"]),
    (
        ["eval", "{learned}", "{story.txt}", "--lengths", "0"],
        ["--lengths must be a comma-separated list of positive integers"],
    ),
    (
        ["eval", "{learned}", "{story.txt}", "--lengths", "8,abc"],
        ["--lengths must be a comma-separated list"],
    ),
    (["eval", "{learned}", "{story.txt}", "--stride", "0"], ["--stride must be a positive integer, got 0"]),
    (
        ["eval", "{learned}", "{story.txt}", "--lengths", "8,16", "--stride", "12"],
        ["--stride (12) must not exceed the evaluation length (8)", "Pass --stride 8 or less"],
    ),
    (
        ["eval", "{learned}", "{story.txt}", "--batch-size", "0"],
        ["--batch-size must be a positive integer, got 0"],
    ),
    (
        ["eval", "{learned}", "{story.txt}", "--position-options", "[]"],
        ["--position-options: must be a JSON object"],
    ),
    (["eval", "{learned}", "{story.txt}", "--text-column", " "], ["--text-column must not be empty"]),
]
COMPARE = [
    (["compare", "{missing}"], ["corpus file {missing} does not exist", "check the path"]),
    (["compare", "{null.jsonl}"], ["{null.jsonl} row 3", "holds null", "--skip-bad-files"]),
    (["compare", "{latin1.txt}"], ["{latin1.txt} is not UTF-8 text", "--skip-bad-files"]),
    (
        ["compare", "{story.txt}", "--eval-lengths", "4"],  # the default sliding stride is L/2 = 8
        ["--sliding-stride (8) must not exceed the evaluation length (4)", "Pass --sliding-stride 4 or less"],
    ),
    (
        ["compare", "{story.txt}", "--eval-lengths", "8,16", "--sliding-stride", "12"],
        [
            "--sliding-stride (12) must not exceed the evaluation length (8)",
            "Pass --sliding-stride 8 or less",
        ],
    ),
    (
        ["compare", "{story.txt}", "--eval-lengths", "0"],
        ["--eval-lengths must be comma-separated positive integers"],
    ),
    (
        ["compare", "{story.txt}", "--eval-lengths", "x"],
        ["--eval-lengths must be comma-separated positive integers"],
    ),
    (["compare", "{story.txt}", "--strategies", "nope"], ["unknown position-encoding strategy 'nope'"]),
    (["compare", "{story.txt}", "--strategies", ","], ["--strategies must name at least one strategy"]),
    (["compare", "{story.txt}", "--protocols", "nope"], ["--protocols must be a comma-separated subset of"]),
    (
        ["compare", "{story.txt}", "--protocols", "non-overlapping", "--sliding-stride", "4"],
        ["--sliding-stride is for the sliding protocol", "add it to --protocols or leave it out"],
    ),
    (
        ["compare", "{story.txt}", "--rope-scalings", "yarn"],
        ["--rope-scalings stretch the rope model", "add rope to --strategies"],
    ),
    (
        ["compare", "{story.txt}", "--rope-scalings", "nope"],
        ["--rope-scalings must be a comma-separated subset"],
    ),
    (["compare", "{story.txt}", "--sliding-stride", "0"], ["--sliding-stride must be positive, got 0"]),
    (["compare", "{story.txt}", "--eval-tokens", "0"], ["--eval-tokens must be positive, got 0"]),
    (
        ["compare", "{story.txt}", "--position-options", '{"rope": {}}'],
        ["--position-options names 'rope', which is not compared"],
    ),
    (
        ["compare", "{story.txt}", "--output-dir", "{afile}"],
        ["--output-dir {afile} exists and is not a directory (a file)", "choose another --output-dir"],
    ),
    (
        ["compare", "{story.txt}", "--output-dir", "{afile}/cmp"],
        ["--output-dir {afile}/cmp: {afile} is a file", "choose another --output-dir"],
    ),
    (["compare", "{story.txt}", "--max-steps", "0"], ["--max-steps must be positive, got 0"]),
]
ATTENTION = [
    (["attention", "{in}/nothing", "Hello"], ["{in}/nothing is not a model directory: it does not exist"]),
    (
        ["attention", "{learned}/loss_curve.png", "Hello"],
        ["is not a model directory but a file", "the directory that holds it, {learned}"],
    ),
    (["attention", "{model:config 42}", "Hello"], ["config.json holds int, not a JSON object"]),
    (
        ["attention", "{model:weights missing}", "Hello"],
        ["has no model.safetensors", "copy it back or train again"],
    ),
    (["attention", "{learned}", ""], ["TEXT must not be empty"]),
    (
        ["attention", "{learned}", "Hello", "--layer", "2"],
        ["--layer must be between -2 and 1 (-1: the last), got 2"],
    ),
    (
        ["attention", "{learned}", "Hello", "--layer", "-3"],
        ["--layer must be between -2 and 1 (-1: the last), got -3"],
    ),
    (["attention", "{learned}", "Hello", "--head", "4"], ["--head must be between 0 and 3, got 4"]),
    (["attention", "{learned}", "Hello", "--head", "-1"], ["--head must be 0 or more, got -1"]),
    (
        ["attention", "{learned}", "Hello " * 80],
        ["the text has 80 tokens, more than the model's 64 positions", "shorten it"],
    ),
    (
        ["attention", "{learned}", "Hello", "-o", "{out}/map.txt"],
        ["-o {out}/map.txt needs an image suffix", "got .txt", "e.g. -o {out}/map.png"],
    ),
    (
        ["attention", "{learned}", "Hello", "-o", "{in}/heatmap"],
        ["-o {in}/heatmap needs an image suffix", "got none", "e.g. -o {in}/heatmap.png"],
    ),
    (
        ["attention", "{learned}", "Hello", "-o", "{in}"],
        ["-o {in} is a folder", "e.g. -o {in}/attention.png"],
    ),
    (["attention", "{learned}", "Hello", "-o", ""], ["-o is empty", "e.g. -o attention.png"]),
    (
        ["attention", "{learned}", "Hello", "-o", "{in}/nowhere/map.png"],
        ["the folder {in}/nowhere does not exist", "create it or choose another -o"],
    ),
    (
        ["attention", "{learned}", "Hello", "-o", "{afile}/map.png"],
        ["{afile} is a file, not a folder", "choose another -o"],
    ),
]
GENERATE = [
    (
        ["generate", "{in}/nothing", "Hello"],
        ["{in}/nothing is not a model directory: it does not exist", "hfgpt train --output-dir"],
    ),
    (
        ["generate", "{learned}/loss_curve.png", "hi"],
        ["loss_curve.png is not a model directory but a file", "the directory that holds it, {learned}"],
    ),
    (
        ["generate", "{learned}", "Hello", "--temperature", "-1"],
        ["--temperature must be a finite number >= 0"],
    ),
    (
        ["generate", "{learned}", "Hello", "--temperature", "nan"],
        ["--temperature must be a finite number >= 0"],
    ),
    (
        ["generate", "{learned}", "Hello", "--temperature", "inf"],
        ["--temperature must be a finite number >= 0"],
    ),
    (
        ["generate", "{learned}", "Hello", "--temperature", "1e-45"],
        ["--temperature 1e-45 is too small to sample with", "use --greedy, or a temperature >= 1e-30"],
    ),
    (["generate", "{learned}", "Hello", "--top-k", "0"], ["--top-k must be a positive integer"]),
    (
        ["generate", "{learned}", "Hello", "--temperature", "1", "--top-p", "0"],
        ["--top-p must be a number in (0, 1]"],
    ),
    (
        ["generate", "{learned}", "Hello", "--temperature", "1", "--top-p", "nan"],
        ["--top-p must be a finite number, got nan"],
    ),
    (
        ["generate", "{learned}", "Hello", "--repetition-penalty", "0"],
        ["--repetition-penalty must be a number > 0"],
    ),
    (
        ["generate", "{learned}", "Hello", "--num-return-sequences", "0"],
        ["--num-return-sequences must be a positive integer"],
    ),
    (
        ["generate", "{learned}", "Hello", "--num-return-sequences", "2"],
        ["identical texts", "add --temperature"],
    ),
    (
        ["generate", "{learned}", "Hello", "--top-k", "5"],
        ["--top-k only applies when sampling", "add --temperature"],
    ),
    (["generate", "{learned}", "Hello", "--stop", ""], ["--stop takes non-empty strings"]),
    (
        ["generate", "{learned}", "Hello", "--seed", "1"],
        ["--seed only affects sampling", "add --temperature or drop --seed"],
    ),
    (
        ["generate", "{learned}", "Hello", "--greedy", "--temperature", "1"],
        ["--greedy and --temperature contradict"],
    ),
    (
        ["generate", "{learned}", "Hello", "--max-new-tokens", "0"],
        ["--max-new-tokens must be a positive integer"],
    ),
    (["generate", "{learned}", ""], ["the prompt is empty"]),
    (["generate", "{learned}", "   "], ["the prompt is empty"]),
    (
        ["generate", "{model:config not json}", "Hello"],
        ["config.json is not a readable JSON file", "save it again"],
    ),
    (["generate", "{model:config null}", "Hello"], ["holds NoneType, not a JSON object"]),
    (
        ["generate", "{model:config edited}", "Hello"],
        ["do not fit the model its config describes", "restore both"],
    ),
    (["generate", "{model:weights missing}", "Hello"], ["has no model.safetensors"]),
    (["generate", "{model:weights a directory}", "Hello"], ["has no model.safetensors"]),
    (["generate", "{model:weights truncated}", "Hello"], ["model.safetensors cannot be read"]),
    (
        ["generate", "{model:no tokenizer files}", "Hello"],
        ["has no tokenizer (tokenizer_config.json is missing)"],
    ),
    (["generate", "{model:no vocab}", "Hello"], ["must hold its vocab.json"]),
]
TOKENIZE = [
    ([], ["give at least one FILE to tokenize"]),
    (["{missing}"], ["corpus file {missing} does not exist"]),
    (["{in}/*.nothing"], ["no files match"]),
    (["{binary.txt}"], ["{binary.txt} looks binary", "pass plain UTF-8 text files"]),
    (["{latin1.txt}"], ["{latin1.txt} is not UTF-8 text", "convert it"]),
    (["{story.txt}", "--tokenizer", "nope"], ["unknown tokenizer strategy 'nope'"]),
    (["{story.txt}", "--tokenizer", "regex", "--vocab-size", "9"], ["does not take vocab_size"]),
    (["{story.txt}", "--vocab-size", "0"], ["--vocab-size must be positive, got 0"]),
    (["{story.txt}", "--vocab-size", "abc"], ["invalid int value"]),
    (["{story.txt}", "--tokenizer-options", "[1]"], ["--tokenizer-options: must be a JSON object"]),
    (
        [
            "{story.txt}",
            "--tokenizer",
            "bpe",
            "--vocab-size",
            "300",
            "--tokenizer-options",
            '{"vocab_size": 400}',
        ],
        ["--vocab-size and --tokenizer-options vocab_size disagree"],
    ),
    (["{story.txt}", "--save", ""], ["--save must not be empty"]),
    (
        ["{story.txt}", "--save", "{afile}"],
        ["--save {afile} exists and is not a directory (a file)", "choose another --save"],
    ),
    (
        ["{story.txt}", "--save", "{afile}/sub"],
        ["--save {afile}/sub: {afile} is a file", "choose another --save"],
    ),
]
TOKENIZE = [(["tokenize", *argv], expected) for argv, expected in TOKENIZE]
PLUGINS = [
    (["plugins", "extra"], ["unrecognized arguments: extra"]),
    (["plugins", "--json", "--yaml"], ["unrecognized arguments: --yaml"]),
]
EXPORT = [
    (["export", "{in}/nothing", "{out}"], ["{in}/nothing is not a model directory: it does not exist"]),
    (
        ["export", "{learned}/loss_curve.png", "{out}"],
        ["is not a model directory but a file", "the directory that holds it, {learned}"],
    ),
    (["export", "{model:config null}", "{out}"], ["holds NoneType, not a JSON object"]),
    (["export", "{model:weights truncated}", "{out}"], ["model.safetensors cannot be read"]),
    (["export", "{model:no tokenizer files}", "{out}"], ["has no tokenizer"]),
    (["export", "{sinusoidal}", "{out}"], ["sinusoidal", "no stock"]),
    (["export", "{rope}", "{out}", "--to", "gpt2"], ["rope", "gpt2"]),
    (["export", "{learned}", "{out}", "--to", "llama"], ["invalid choice: 'llama'"]),
    (
        ["export", "{learned}", "{afile}"],
        ["OUT {afile} exists and is not a directory (a file)", "choose another OUT"],
    ),
    (["export", "{learned}", "{afile}/x"], ["OUT {afile}/x: {afile} is a file", "choose another OUT"]),
    (["export", "{learned}", "{learned}"], ["is the model directory", "choose another OUT"]),
    (["export", "{learned}", "{learned}/export"], ["is the model directory", "or inside it"]),
    (["export", "{learned}", "{rope}"], ["already holds a model", "--overwrite"]),
    (["export", "{learned}", ""], ["OUT must not be empty"]),
]
CASES = TRAIN + EVAL + COMPARE + ATTENTION + GENERATE + TOKENIZE + PLUGINS + EXPORT

# options each command gets unless a case gives its own: small, quiet runs, so a case that reached the data or
# the model would fail fast rather than train
DEFAULTS = {
    "train": {"--output-dir": "{out}", "--no-progress": None, "--preset": "tiny", "--tokenizer": "regex"},
    "eval": {"--no-progress": None},
    "compare": {
        "--output-dir": "{out}",
        "--no-progress": None,
        "--preset": "tiny",
        "--tokenizer": "regex",
        "--strategies": "learned",
        "--max-length": "16",
        "--max-steps": "2",
    },
    "attention": {"-o": "{tmp}/attention.png"},
}


def command_options() -> dict[str, set[str]]:
    """Each command's option strings, as its parser (and so its `--help`) has them."""
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    return {name: set(sub._option_string_actions) for name, sub in commands.items()}


OPTIONS = command_options()


def flags_not_offered(command: str, message: str, given: list[str] = ()) -> list[str]:
    """The `--flags` a message names that the command it names them for does not have: the command that
    failed, or `hfgpt <other>` in a backquoted command line. Flags the user gave (`given`: an unrecognized
    one, quoted back) do not count."""
    wrong = []
    for span in re.findall(r"`([^`]*)`", message):
        named = re.match(r"hfgpt (\w+)", span)
        if named:
            wrong += [f for f in re.findall(r"--[a-z][a-z-]*", span) if f not in OPTIONS[named.group(1)]]
    rest = re.sub(r"`hfgpt [^`]*`", "", message)
    named = re.findall(r"(?<![\w-])--[a-z][a-z-]*", rest)
    return wrong + [f for f in named if f not in OPTIONS[command] and f not in given]


def snapshot(*roots: Path) -> dict[str, tuple[int, int, int]]:
    return {
        str(p): (p.stat().st_mode, p.stat().st_size, p.stat().st_mtime_ns)
        for root in roots
        for p in sorted([root, *root.rglob("*")])
    }


def fill(text: str, places: dict[str, str]) -> str:
    """`text` with its `{name}` placeholders replaced (JSON values such as '{"rope": {}}' left alone)."""
    return re.sub(r"\{([\w.: -]+)\}", lambda m: places.get(m.group(1), m.group(0)), text)


def prepare(tmp_path: Path, models: Path, argv: list[str]) -> tuple[list[str], dict[str, str]]:
    """The case's input files and damaged models in `tmp_path`, and its argv with the placeholders filled and
    the command's defaults added."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    places = {
        "in": str(inputs),
        "out": str(tmp_path / "out"),
        "tmp": str(tmp_path),
        "missing": str(inputs / "missing.txt"),
        "models": str(models),
        **{name: str(models / name) for name in ("learned", "rope", "sinusoidal")},
    }
    for name, content in FILES.items():
        _write(inputs / name, content)
        places[name] = str(inputs / name)
    for arg in argv:
        if arg.startswith("{model:"):
            how = arg[len("{model:") : -1]
            model = inputs / ("model-" + how.replace(" ", "-"))
            shutil.copytree(models / "learned", model)
            damage(model, how)
            places[arg[1:-1]] = str(model)
    args = [fill(arg, places) for arg in argv]
    for option, value in DEFAULTS.get(argv[0], {}).items():
        if option not in argv:
            args += [option] if value is None else [option, fill(value, places)]
    return args, places


def case_id(value) -> str:
    return " ".join(value)[:80] if isinstance(value, list) and value and value[0] in OPTIONS else "-"


@pytest.mark.parametrize(("argv", "expected"), CASES, ids=case_id)
def test_user_errors_exit_2_with_one_line_and_change_nothing(argv, expected, tmp_path, models, capsys):
    args, places = prepare(tmp_path, models, argv)
    before = snapshot(tmp_path, models)

    try:
        code = main(args)
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code
    captured = capsys.readouterr()

    assert code == 2, captured.err
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    line = lines[0]
    assert line.startswith(f"hfgpt {argv[0]}: error: "), line
    assert "Traceback" not in captured.err and captured.out == ""
    for fragment in expected:
        assert fill(fragment, places) in line, line
    assert flags_not_offered(argv[0], line, args) == [], line
    assert snapshot(tmp_path, models) == before  # no file created, changed or removed, outputs included


def test_the_flag_check_finds_options_a_command_does_not_have():
    """The check above, on messages it must pass and messages it must catch."""
    assert flags_not_offered("tokenize", "x.txt is not UTF-8 text: leave it out (--skip-bad-files)") == [
        "--skip-bad-files"
    ]
    assert flags_not_offered("eval", "x.txt is not UTF-8 text: leave it out (--skip-bad-files)") == []
    assert flags_not_offered("generate", "m does not exist: (`hfgpt train --output-dir m` writes one)") == []
    assert flags_not_offered("generate", "`hfgpt train --out m`") == ["--out"]
    assert flags_not_offered("plugins", "unrecognized arguments: --yaml", ["--yaml"]) == []


# Real processes: the exit status, the absence of a traceback and of any other line (a library's log, a
# progress bar) as a user sees them.
SUBPROCESS_CASES = [
    (["train", "{malformed.jsonl}"], ["{malformed.jsonl} cannot be read as JSON (line 2,"]),
    (["eval", "{learned}", "{malformed.jsonl}"], ["{malformed.jsonl} cannot be read as JSON (line 2,"]),
    (["eval", "{learned}", "{numbers.jsonl}"], ["{numbers.jsonl} row 1", "holds a number (1)"]),
    (["compare", "{missing}"], ["corpus file {missing} does not exist"]),
    (["attention", "{learned}", "Hello", "-o", "{tmp}/map.txt"], ["-o {tmp}/map.txt needs an image suffix"]),
    (["generate", "{learned}", "Hello", "--temperature", "1e-45"], ["--temperature 1e-45 is too small"]),
]


@pytest.mark.parametrize(("argv", "expected"), SUBPROCESS_CASES, ids=case_id)
def test_a_real_process_exits_2_with_one_line(argv, expected, tmp_path, models):
    args, places = prepare(tmp_path, models, argv)
    before = snapshot(tmp_path, models)
    done = subprocess.run(
        [sys.executable, "-m", "hfgpt", *args], capture_output=True, text=True, env=ENV, timeout=300
    )
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"hfgpt {argv[0]}: error: "), done.stderr
    assert all(fill(fragment, places) in lines[0] for fragment in expected), lines[0]
    assert snapshot(tmp_path, models) == before


# Output paths in a directory nobody may write in. As root permissions stop nothing, so the directory is
# made read-only by a bind mount in a private mount namespace (`unshare -m`), where the cases run; otherwise
# it is `chmod 555`.
READ_ONLY_CASES = [
    (["train", "{story.txt}", "--output-dir", "{ro}/run"], "--output-dir {ro}/run"),
    (["compare", "{story.txt}", "--output-dir", "{ro}/cmp"], "--output-dir {ro}/cmp"),
    (["attention", "{learned}", "Hello", "-o", "{ro}/map.png"], "-o {ro}/map.png"),
    (["tokenize", "{story.txt}", "--save", "{ro}/tok"], "--save {ro}/tok"),
    (["export", "{learned}", "{ro}/exported"], "OUT {ro}/exported"),
]
RUN_CASES = """
import contextlib, io, json, sys
from hfgpt.cli import main
results = []
for args in json.load(sys.stdin):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(args)
        except SystemExit as exit_:
            code = exit_.code
    results.append((code, err.getvalue()))
print(json.dumps(results))
"""


def test_output_paths_that_cannot_be_written_are_refused_before_any_work(tmp_path, models):
    ro = tmp_path / "read-only"
    ro.mkdir()
    all_args, all_places = [], []
    for number, (argv, _) in enumerate(READ_ONLY_CASES):
        (tmp_path / str(number)).mkdir()
        args, places = prepare(tmp_path / str(number), models, [a.replace("{ro}", str(ro)) for a in argv])
        all_args.append(args)
        all_places.append({**places, "ro": str(ro)})
    before = snapshot(tmp_path, models)
    if os.geteuid() == 0:
        if shutil.which("unshare") is None:
            pytest.skip("running as root without unshare: no way to make a directory read-only for root")
        mount = 'mount --bind -o ro "$1" "$1" && exec "$2" -c "$3"'
        done = subprocess.run(
            [
                "unshare",
                "-m",
                "--propagation",
                "private",
                "sh",
                "-c",
                mount,
                "sh",
                ro,
                sys.executable,
                RUN_CASES,
            ],
            input=json.dumps(all_args),
            capture_output=True,
            text=True,
            env=ENV,
            timeout=300,
        )
        if done.returncode != 0 and "mount" in done.stderr:
            pytest.skip(f"running as root, and no private read-only bind mount here: {done.stderr.strip()}")
        assert done.returncode == 0, done.stderr
        results = json.loads(done.stdout)
        reason = "a read-only file system"
    else:
        ro.chmod(0o555)
        try:
            results = [_run_in_process(args) for args in all_args]
        finally:
            ro.chmod(0o755)
        reason = "no write permission"
    for (argv, option), places, (code, err) in zip(READ_ONLY_CASES, all_places, results):
        lines = err.splitlines()
        assert code == 2 and len(lines) == 1, err
        assert f"{fill(option, places)}: cannot write in {ro} ({reason}): choose another" in lines[0], lines[
            0
        ]
        assert lines[0].startswith(f"hfgpt {argv[0]}: error: ")
    assert snapshot(tmp_path, models) == before


def _run_in_process(args: list[str]) -> tuple[int, str]:
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(args)
        except SystemExit as exit_:
            code = exit_.code
    return code, err.getvalue()
