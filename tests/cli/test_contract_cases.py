"""The reported reliability cases, one test each beyond the contract table (`test_contract.py`): what a run
does once the input is fixed or the bad part skipped, checked against an independent reference (the same
command on clean input, a plain loop, transformers' own classes, the files actually written)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import hfgpt
from hfgpt.cli import main
from hfgpt.errors import HFGPTError, ModelLoadError, TokenizerInputError
from tests.cli.test_contract import ENV, PARAGRAPHS, STORY, _jsonl, build_models
from tests.helpers.evaluation import non_overlapping_nats, stream

PROGRESS_MARKS = ("%|", "it/s]", "examples/s]", "{'loss'", "{'eval_loss'", "{'train_runtime'")


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    return build_models(tmp_path_factory.mktemp("models"))


def run(args: list[str], capsys) -> tuple[int, str, str]:
    try:
        code = main([str(a) for a in args])
    except SystemExit as exit_:
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


# --- structured corpora -------------------------------------------------------------------------------------
def test_eval_skips_rows_without_text_and_scores_exactly_the_rows_with_text(tmp_path, models, capsys):
    good = PARAGRAPHS[:4]
    rows = [good[0], None, 42, good[1], "", {"text": "x"}, "  \n", good[2], [1, 2], good[3], True]
    (tmp_path / "mixed.jsonl").write_text(_jsonl(rows))
    (tmp_path / "clean.jsonl").write_text(_jsonl(good))
    model = models / "learned"

    code, _, err = run(["eval", model, tmp_path / "mixed.jsonl", "--no-progress"], capsys)
    assert code == 2 and "mixed.jsonl row 2: the 'text' column holds null, not text" in err

    code, out, err = run(
        ["eval", model, tmp_path / "mixed.jsonl", "--skip-bad-files", "--json", "--no-progress"], capsys
    )
    assert code == 0, err
    assert err.strip() == (
        f"hfgpt: skipped {len(rows) - len(good)} row(s) without text in the 'text' column (first: "
        f"{tmp_path / 'mixed.jsonl'} row 2 holds null)"
    )
    code, clean, _ = run(["eval", model, tmp_path / "clean.jsonl", "--json", "--no-progress"], capsys)
    assert json.loads(out) == json.loads(clean)  # the same tokens, bytes and loss as the clean file


def test_train_skips_rows_without_text_with_a_count(tmp_path, capsys):
    rows = [*PARAGRAPHS[:12], None, 7, ""]
    (tmp_path / "corpus.jsonl").write_text(_jsonl(rows))
    args = [
        "train",
        tmp_path / "corpus.jsonl",
        "--preset",
        "tiny",
        "--tokenizer",
        "regex",
        "--max-length",
        "16",
    ]
    args += ["--max-steps", "1", "--no-progress", "--output-dir", tmp_path / "out"]
    code, _, err = run(args, capsys)
    assert code == 2 and "row 13: the 'text' column holds null" in err
    assert not (tmp_path / "out").exists()
    code, _, err = run([*args, "--skip-bad-files"], capsys)
    assert code == 0, err
    assert "hfgpt: skipped 3 row(s) without text in the 'text' column" in err
    assert (tmp_path / "out" / "model.safetensors").is_file()


def test_eval_skip_bad_files_leaves_out_a_latin1_file_and_scores_the_rest(tmp_path, models, capsys):
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("Café crème, déjà vu. ".encode("latin-1") * 50)
    story = tmp_path / "story.txt"
    story.write_text(STORY[:4000])
    model = models / "learned"
    code, _, err = run(["eval", model, latin1, story], capsys)
    assert code == 2 and "is not UTF-8 text" in err and "(--skip-bad-files)" in err
    code, out, err = run(["eval", model, latin1, story, "--skip-bad-files", "--json"], capsys)
    assert code == 0, err
    assert f"hfgpt: skipped 1 file(s), {latin1.stat().st_size:,} bytes" in err and str(latin1) in err
    assert json.loads(out) == json.loads(run(["eval", model, story, "--json"], capsys)[1])


# --- eval: a length longer than the text -------------------------------------------------------------------
def test_an_evaluation_length_longer_than_the_text_scores_the_text_once(
    tmp_path, models, capsys, monkeypatch
):
    """The model sees the text's tokens once (no padding to the length): counted with a forward hook, and the
    loss equals a plain loop's over the same tokens."""
    import hfgpt.loading

    text = tmp_path / "short.txt"
    text.write_text(PARAGRAPHS[0][:120])
    seen, loaded = [], []
    load = hfgpt.loading.load_causal_lm

    def load_and_count(*args, **kwargs):
        model, tokenizer = load(*args, **kwargs)
        model.register_forward_hook(lambda module, inputs, output: seen.append(output.logits.shape[:2]))
        loaded.append((model, tokenizer))
        return model, tokenizer

    monkeypatch.setattr(hfgpt.loading, "load_causal_lm", load_and_count)
    code, out, err = run(["eval", models / "rope", text, "--lengths", "131072", "--json"], capsys)
    assert code == 0, err
    model, tokenizer = loaded[0]
    ids = stream(tokenizer, [text.read_text()])
    assert seen == [(1, len(ids) - 1)]  # one window of the text's tokens but the last (only a target)
    (result,) = json.loads(out)
    nats, count = non_overlapping_nats(model, ids, 131072)
    assert result["tokens"] == count == len(ids) - 1
    assert result["loss"] == pytest.approx(nats / count, rel=1e-5)


# --- attention ----------------------------------------------------------------------------------------------
def test_a_negative_layer_is_drawn_and_titled_as_the_real_layer(tmp_path, models, capsys, monkeypatch):
    import hfgpt.attention_maps

    drawn = []
    monkeypatch.setattr(
        hfgpt.attention_maps,
        "plot_attention",
        lambda panels, tokens, path: drawn.append(panels) or Path(path),
    )
    model_dir = models / "learned"
    code, out, err = run(
        ["attention", model_dir, "Every effort moves you", "--layer", "-2", "-o", tmp_path / "a.png"], capsys
    )
    assert code == 0, err
    (panels,) = drawn
    model = hfgpt.HFGPTForCausalLM.from_pretrained(model_dir, attn_implementation="eager")
    tokenizer = hfgpt.RegexTokenizer.from_pretrained(model_dir)
    ids = torch.tensor([tokenizer("Every effort moves you", add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        first = model(ids, output_attentions=True).attentions[0][0]  # 2 layers: -2 is layer 0
    assert [title for title, _ in panels] == [f"layer 0, head {h}" for h in range(model.config.n_heads)]
    for head, (_, weights) in enumerate(panels):
        torch.testing.assert_close(torch.as_tensor(weights), first[head])
    assert "layer 0, 4 head(s)" in out


@pytest.mark.parametrize(
    ("name", "magic"),
    [("a.png", b"\x89PNG"), ("a.PDF", b"%PDF"), ("a.svg", b"<?xml"), ("a.jpg", b"\xff\xd8")],
)
def test_attention_writes_the_file_it_names_and_no_other(tmp_path, models, capsys, name, magic):
    out_dir = tmp_path / "maps"
    out_dir.mkdir()
    code, out, err = run(["attention", models / "learned", "Every effort", "-o", out_dir / name], capsys)
    assert code == 0, err
    assert tree(out_dir) == {name}
    assert (out_dir / name).read_bytes().startswith(magic)
    assert out.strip().endswith(f"written to {out_dir / name}")


# --- output paths: what is written is what was named -------------------------------------------------------
def test_train_tokenize_and_export_write_only_the_paths_they_name(tmp_path, capsys):
    corpus = tmp_path / "story.txt"
    corpus.write_text(STORY[:6000])
    work = tmp_path / "work"
    work.mkdir()
    code, out, err = run(
        ["train", corpus, "--preset", "tiny", "--tokenizer", "regex", "--max-length", "16", "--max-steps", "2",
         "--no-progress", "--output-dir", work / "run"], capsys)  # fmt: skip
    assert code == 0, err
    assert {p.split("/")[0] for p in tree(work)} == {"run"} and f"saved to {work / 'run'}" in out
    code, out, err = run(["tokenize", corpus, "--tokenizer", "regex", "--save", work / "tok"], capsys)
    assert code == 0, err
    assert {p.split("/")[0] for p in tree(work)} == {"run", "tok"} and (work / "tok" / "vocab.json").is_file()
    code, out, err = run(["export", work / "run", work / "exported"], capsys)
    assert code == 0, err
    assert {p.split("/")[0] for p in tree(work)} == {"run", "tok", "exported"}  # no staging directory left
    assert f"to {work / 'exported'}:" in out and (work / "exported" / "config.json").is_file()


# --- compare: refused before anything is written, then runs once fixed ------------------------------------
def test_compare_with_a_missing_corpus_writes_nothing_and_runs_once_the_path_is_fixed(tmp_path, capsys):
    corpus = tmp_path / "story.txt"
    out = tmp_path / "out"
    args = ["--preset", "tiny", "--tokenizer", "regex", "--strategies", "learned", "--max-length", "16"]
    args += [
        "--max-steps",
        "2",
        "--eval-lengths",
        "16,32",
        "--eval-tokens",
        "64",
        "--output-dir",
        out,
        "--no-progress",
    ]
    code, stdout, err = run(["compare", tmp_path / "missing.txt", *args], capsys)
    assert code == 2 and err.count("\n") == 1 and "missing.txt does not exist" in err
    assert not out.exists()  # no settings.json, no model directory
    corpus.write_text(STORY[:6000])
    code, stdout, err = run(["compare", corpus, *args], capsys)
    assert code == 0, err
    assert {"results.csv", "report.md", "settings.json"} <= tree(out)
    assert not any(mark in err + stdout for mark in PROGRESS_MARKS), err
    assert all(line.startswith("hfgpt") for line in err.splitlines()), err


# --- --no-progress, and commands without bars --------------------------------------------------------------
def test_no_progress_prints_no_bars_and_no_logs(tmp_path, models, capsys):
    corpus = tmp_path / "story.txt"
    corpus.write_text(STORY[:6000])
    code, out, err = run(
        ["train", corpus, "--preset", "tiny", "--tokenizer", "regex", "--max-length", "16", "--max-steps", "3",
         "--eval-every", "1", "--no-progress", "--output-dir", tmp_path / "run"], capsys)  # fmt: skip
    assert code == 0, err
    assert not any(mark in out + err for mark in PROGRESS_MARKS), out + err
    lines = err.splitlines()  # what a run chose, not progress: the precision and the held-out split
    assert (
        len(lines) == 2
        and lines[0].startswith("hfgpt: mixed precision: none")
        and lines[1].startswith("hfgpt: validation: held out")
    ), err
    code, out, err = run(["eval", models / "learned", corpus, "--no-progress"], capsys)
    assert code == 0 and err == "", err
    code, _, with_bars = run(["eval", models / "learned", corpus], capsys)
    assert code == 0 and "%|" in with_bars  # the marks do show progress when it is on


@pytest.mark.parametrize(
    "argv",
    [
        ["generate", "{learned}", "Every effort", "--max-new-tokens", "3"],
        ["attention", "{learned}", "Every effort", "-o", "{tmp}/a.png"],
        ["tokenize", "{tmp}/story.txt", "--tokenizer", "bpe", "--vocab-size", "300", "--save", "{tmp}/tok"],
        ["plugins"],
        ["export", "{rope}", "{tmp}/exported"],
    ],
    ids=lambda argv: argv[0],
)
def test_commands_without_progress_options_print_no_bars(argv, tmp_path, models, capsys):
    (tmp_path / "story.txt").write_text(STORY[:6000])
    places = {"learned": str(models / "learned"), "rope": str(models / "rope"), "tmp": str(tmp_path)}
    code, out, err = run([arg.format(**places) for arg in argv], capsys)
    assert code == 0, err
    assert err == "" and not any(mark in out for mark in PROGRESS_MARKS), out + err


# --- loading: damaged config.json, paths that do not exist, remote code ------------------------------------
@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory) -> Path:
    from transformers import GPT2Config, GPT2LMHeadModel

    path = tmp_path_factory.mktemp("gpt2")
    torch.manual_seed(0)
    GPT2LMHeadModel(
        GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=50, n_positions=16)
    ).save_pretrained(path)
    return path


@pytest.mark.parametrize("content", ["null", "42", "[]"])
def test_a_config_that_is_not_a_json_object(content, tmp_path, models, gpt2_dir):
    """hfgpt's classes and `load_causal_lm` name the file; `AutoModelForCausalLM` reads config.json to find the
    class before hfgpt is involved, and raises what it raises for GPT-2 with the same damage."""
    from transformers import AutoModelForCausalLM

    from hfgpt.loading import load_causal_lm

    ours, theirs = tmp_path / "hfgpt", tmp_path / "gpt2"
    shutil.copytree(models / "learned", ours)
    shutil.copytree(gpt2_dir, theirs)
    for directory in (ours, theirs):
        (directory / "config.json").write_text(content)
    kind = {"null": "NoneType", "42": "int", "[]": "list"}[content]
    expected = f"{ours / 'config.json'} holds {kind}, not a JSON object: the model config is damaged"
    with pytest.raises(ModelLoadError, match=expected):
        hfgpt.HFGPTForCausalLM.from_pretrained(ours)
    with pytest.raises(ModelLoadError, match=expected):
        load_causal_lm(ours)
    errors = []
    for directory in (ours, theirs):
        with pytest.raises(Exception) as caught:
            AutoModelForCausalLM.from_pretrained(directory)
        errors.append((type(caught.value), str(caught.value).replace(str(directory), "DIR")))
    assert errors[0] == errors[1]  # transformers' own error, the same for GPT-2
    assert not issubclass(errors[0][0], HFGPTError)


@pytest.mark.parametrize("path", ["does/not/exist", "./nope", "{tmp}/nope", "{tmp}/file.txt"])
def test_from_pretrained_on_a_path_that_is_no_model_directory(path, tmp_path):
    """A local path gets a local error; transformers' own classes answer with the Hub's repo-id rules."""
    from transformers import GPT2LMHeadModel

    (tmp_path / "file.txt").write_text("hello")
    path = path.format(tmp=tmp_path)
    what = "is not a model directory but a file" if path.endswith("file.txt") else "it does not exist"
    with pytest.raises(ModelLoadError, match=what):
        hfgpt.HFGPTForCausalLM.from_pretrained(path)
    if not path.endswith("file.txt"):
        with pytest.raises(OSError, match="Repo id must"):
            GPT2LMHeadModel.from_pretrained(path)


def test_a_tokenizer_refuses_a_batch_mixing_ids_and_text(models):
    tokenizer = hfgpt.RegexTokenizer.from_pretrained(models / "learned")
    with pytest.raises(TokenizerInputError):
        tokenizer([[1, "a"]])


@pytest.fixture(scope="module")
def code_variants(models, tmp_path_factory) -> dict[str, Path]:
    """The learned model, and copies whose modeling_hfgpt.py is deleted or garbage, or whose
    configuration_hfgpt.py is garbage."""
    root = tmp_path_factory.mktemp("code")
    variants = {"intact": None, "model code deleted": "modeling_hfgpt.py", "model code garbage": "modeling_hfgpt.py",
                "config code garbage": "configuration_hfgpt.py"}  # fmt: skip
    paths = {}
    for name, file in variants.items():
        path = root / name.replace(" ", "-")
        shutil.copytree(models / "learned", path)
        if name.endswith("deleted"):
            (path / file).unlink()
        elif file:
            (path / file).write_text("this is ( not python\n")
        paths[name] = path
    return paths


def test_the_model_code_file_changes_nothing_for_hfgpt_commands(code_variants, capsys):
    outputs = {}
    for name in ("intact", "model code deleted", "model code garbage", "config code garbage"):
        code, out, err = run(
            ["generate", code_variants[name], "Every effort", "--max-new-tokens", "8"], capsys
        )
        assert code == 0, err
        outputs[name] = out
    assert len(set(outputs.values())) == 1


def test_auto_classes_load_the_installed_code_whatever_the_code_files_hold(code_variants):
    """In a process that imported hfgpt, `AutoModelForCausalLM` loads hfgpt's registered class, with or without
    `trust_remote_code` (transformers prefers a registered class to a directory's code), with the same logits."""
    from transformers import AutoModelForCausalLM

    ids = torch.tensor([[1, 2, 3, 4]])
    reference = AutoModelForCausalLM.from_pretrained(code_variants["intact"]).eval()
    with torch.no_grad():
        expected = reference(ids).logits
        for name, path in code_variants.items():
            for trust in (None, True):
                model = AutoModelForCausalLM.from_pretrained(path, trust_remote_code=trust).eval()
                assert type(model) is hfgpt.HFGPTForCausalLM, name
                torch.testing.assert_close(model(ids).logits, expected)


FRESH_PROCESS = """
import json, sys, torch
from transformers import AutoModelForCausalLM
assert "hfgpt" not in sys.modules
try:
    model = AutoModelForCausalLM.from_pretrained(sys.argv[1], trust_remote_code=True).eval()
    with torch.no_grad():
        logits = model(torch.tensor([[1, 2, 3, 4]])).logits
    print(json.dumps([type(model).__module__ + "." + type(model).__name__, logits.tolist()]))
except Exception as exc:
    print(json.dumps([type(exc).__name__, str(exc)]))
"""


@pytest.mark.slow  # three fresh processes that import transformers and torch
def test_trust_remote_code_in_a_fresh_process_runs_the_installed_code(code_variants):
    """A process that never imported hfgpt, `trust_remote_code=True`: configuration_hfgpt.py imports hfgpt,
    which registers its classes, and transformers then prefers them to the directory's modeling_hfgpt.py, so
    a deleted or garbage model file changes nothing; a garbage configuration_hfgpt.py fails loudly."""
    from transformers import AutoModelForCausalLM

    with torch.no_grad():
        expected = AutoModelForCausalLM.from_pretrained(code_variants["intact"]).eval()(
            torch.tensor([[1, 2, 3, 4]])
        )
    names = ("model code deleted", "model code garbage", "config code garbage")
    processes = [  # side by side
        subprocess.Popen([sys.executable, "-c", FRESH_PROCESS, str(code_variants[name])], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=ENV)
        for name in names
    ]  # fmt: skip
    results = {}
    for name, process in zip(names, processes):
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
        results[name] = json.loads(out)
    for name in ("model code deleted", "model code garbage"):
        cls, logits = results[name]
        assert cls == "hfgpt.modeling_hfgpt.HFGPTForCausalLM", results[name]
        torch.testing.assert_close(torch.tensor(logits), expected.logits)
    assert results["config code garbage"][0] == "SyntaxError"
