"""`hfgpt compare` and `hfgpt attention` end to end, on a tiny setting (the bundled story, 30 steps)."""

from __future__ import annotations

import contextlib
import csv
import io
import math
from pathlib import Path

import pytest
import torch

from hfgpt.cli import main
from hfgpt.data.sources import default_corpus_path
from tests.helpers.evaluation import non_overlapping_nats

TINY = [
    str(default_corpus_path()),
    "--preset", "tiny",
    "--tokenizer", "regex",
    "--max-length", "16",
    "--eval-lengths", "16,32",
    "--max-steps", "30",
    "--eval-every", "10",
    "--eval-tokens", "600",
    "--no-progress",
]  # fmt: skip
# `alibi` comes from the installed hfgpt-alibi plugin: accepted by name like a built-in strategy.
STRATEGIES = ["--strategies", "learned,alibi"]


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    """`hfgpt ARGV` in-process: (exit status, stdout, stderr), argparse's own exit included."""
    try:
        status = main(argv)
    except SystemExit as exc:
        status = exc.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.fixture(scope="module")
def compared(tmp_path_factory) -> tuple[Path, str]:
    """One tiny comparison, shared by the tests below: (its output dir, its stderr)."""
    output = tmp_path_factory.mktemp("compare") / "out"
    # A module-scoped fixture cannot take capsys: capture by hand.
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        assert main(["compare", *TINY, *STRATEGIES, "--output-dir", str(output)]) == 0
    return output, err.getvalue()


def read_rows(output: Path) -> list[dict]:
    with open(output / "results.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_compare_writes_results_plots_report_and_models(compared):
    output, log = compared
    for name in ("results.csv", "extrapolation.png", "training_curves.png", "attention.png", "report.md"):
        assert (output / name).stat().st_size > 0, name
    assert (output / "extrapolation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "[1/2] learned" not in log  # --no-progress: no progress lines, but each strategy's result
    assert "compare: learned: trained in" in log and "compare: alibi: trained in" in log

    from transformers import AutoModelForCausalLM

    for strategy in ("learned", "alibi"):
        model = AutoModelForCausalLM.from_pretrained(output / strategy)
        assert model.config.position_encoding == strategy
        assert model.config.context_length == 16  # learned knows exactly the training length


def test_results_csv_schema_and_learned_stops_at_its_context(compared):
    output, _ = compared
    rows = read_rows(output)
    assert list(rows[0]) == [
        "strategy", "eval_length", "protocol", "loss", "perplexity", "seed", "task", "accuracy"
    ]  # fmt: skip
    assert {(r["seed"], r["task"], r["accuracy"]) for r in rows} == {("123", "", "")}  # one seed, text
    got = {(r["strategy"], int(r["eval_length"]), r["protocol"]) for r in rows}
    assert got == {
        ("learned", 16, "non-overlapping"),
        ("learned", 16, "sliding"),
        ("alibi", 16, "non-overlapping"),
        ("alibi", 16, "sliding"),
        ("alibi", 32, "non-overlapping"),
        ("alibi", 32, "sliding"),
    }
    for row in rows:  # perplexity is exp(loss), and a 30-step model is far from perfect
        assert float(row["perplexity"]) == pytest.approx(2.718281828 ** float(row["loss"]), rel=1e-3)
        assert float(row["perplexity"]) > 1
    report = (output / "report.md").read_text()
    assert "`learned` at 32: not evaluated" in report
    assert "20.05" in report and "18.41" in report  # the paper's numbers beside ours


def test_rerun_reuses_trained_strategies(compared, capsys):
    output, _ = compared
    weights = output / "learned" / "model.safetensors"
    before = weights.stat().st_mtime_ns
    status, out, err = run_cli(
        ["compare", *TINY, *STRATEGIES, "--output-dir", str(output), "--protocols", "sliding"], capsys
    )
    assert status == 0, err
    assert "learned: reusing the trained model" in err and "alibi: reusing the trained model" in err
    assert "training 30 steps" not in err
    assert weights.stat().st_mtime_ns == before
    assert {r["protocol"] for r in read_rows(output)} == {"sliding"}


def test_rerun_with_other_training_settings_is_refused(compared, capsys):
    output, _ = compared
    argv = ["compare", *TINY, *STRATEGIES, "--output-dir", str(output), "--seed", "7"]
    status, _, err = run_cli(argv, capsys)
    assert status == 2
    assert err.count("\n") == 1 and "other settings (seed differ)" in err


def test_attention_command_draws_every_head_or_one(compared, tmp_path, capsys):
    output, _ = compared
    every = tmp_path / "every.png"
    status, out, err = run_cli(
        ["attention", str(output / "alibi"), "I had always thought", "-o", str(every)], capsys
    )
    assert status == 0, err
    assert "4 head(s)" in out and every.read_bytes()[:4] == b"\x89PNG"
    one = tmp_path / "one.png"
    argv = [
        "attention",
        str(output / "learned"),
        "I had always thought",
        "--layer",
        "0",
        "--head",
        "1",
        "-o",
        str(one),
    ]
    status, out, err = run_cli(argv, capsys)
    assert status == 0, err
    assert "1 head(s)" in out and one.stat().st_size > 1000


def test_attention_weights_are_causal_distributions(compared):
    from hfgpt.attention_maps import attention_weights

    tokens, weights, layer = attention_weights(compared[0] / "learned", "I had always thought Jack")
    assert layer == 1  # -1: the last of the two layers
    assert weights.shape == (4, len(tokens), len(tokens))
    assert weights.sum(axis=-1) == pytest.approx(1.0, abs=1e-5)
    assert abs(weights[:, 0, 1:]).max() == 0.0  # the first token attends only to itself


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--strategies", "learned,nosuch"], "unknown position-encoding strategy 'nosuch'"),
        (["--protocols", "sliding,strided"], "--protocols must be a comma-separated subset"),
        (["--eval-lengths", "16,x"], "--eval-lengths must be comma-separated positive integers"),
        (["--sliding-stride", "64"], "--sliding-stride (64) must not exceed the evaluation length (16)"),
        (["--max-steps", "0"], "--max-steps must be positive"),
        (
            ["--rope-scalings", "dynamic"],
            "--rope-scalings must be a comma-separated subset of linear,ntk,yarn",
        ),
        (["--rope-scalings", "yarn"], "--rope-scalings stretch the rope model: add rope to --strategies"),
    ],
)
def test_bad_options_exit_2_with_one_line_before_training(argv, message, tmp_path, capsys):
    output = tmp_path / "out"
    status, _, err = run_cli(["compare", *TINY, *STRATEGIES, *argv, "--output-dir", str(output)], capsys)
    assert status == 2
    assert err.count("\n") == 1 and message in err
    assert not output.exists()  # nothing trained, nothing written


def test_default_strategies_are_the_built_ins_and_the_installed_score_bias_plugins(monkeypatch):
    import hfgpt.plugins
    from hfgpt.compare import Comparison

    # CI installs every distribution under plugins/, so both score-bias plugins are there
    assert Comparison.of().strategy_list() == ["learned", "sinusoidal", "rope", "none", "alibi", "t5"]
    built_ins = {name: None for name in ("learned", "sinusoidal", "rope", "none")}
    monkeypatch.setattr(hfgpt.plugins, "strategies", lambda kind: built_ins)  # hfgpt installed alone
    assert Comparison.of().strategy_list() == ["learned", "sinusoidal", "rope", "none"]


def test_rope_scalings_are_series_of_the_stretched_rope_model(tmp_path, capsys, monkeypatch):
    import hfgpt
    import hfgpt.loading

    loads, load = [], hfgpt.loading.load_causal_lm
    monkeypatch.setattr(hfgpt.loading, "load_causal_lm", lambda d, o=None: loads.append(o) or load(d, o))
    output = tmp_path / "out"
    argv = [
        "compare",
        *TINY,
        "--strategies",
        "rope",
        "--rope-scalings",
        "yarn,linear",
        "--output-dir",
        str(output),
    ]
    status, _, err = run_cli([*argv, "--protocols", "non-overlapping"], capsys)
    assert status == 0, err
    loss = {(r["strategy"], int(r["eval_length"])): float(r["loss"]) for r in read_rows(output)}
    assert set(loss) == {(name, n) for name in ("rope", "rope+yarn", "rope+linear") for n in (16, 32)}
    # at L the factor is 1: the plain model; at 2L the model stretched by 2, scored here by a plain loop over
    # the held-out text: the story's last 10% of bytes (its one document), its first 601 tokens (--eval-tokens)
    assert loss["rope+yarn", 16] == pytest.approx(loss["rope", 16], rel=1e-5)
    assert loss["rope+linear", 16] == pytest.approx(loss["rope", 16], rel=1e-5)
    story = default_corpus_path().read_text()
    held_bytes = math.ceil(0.1 * len(story.encode()))
    held_out = story[len(story) - round(len(story) * held_bytes / len(story.encode())) :]
    tokenizer = hfgpt.RegexTokenizer.from_pretrained(output / "rope")
    ids = torch.tensor(tokenizer(held_out, add_special_tokens=False)["input_ids"][:601])
    for scaling in ("yarn", "linear"):
        options = {"scaling": scaling, "factor": 2.0}
        model = hfgpt.HFGPTForCausalLM.from_pretrained(
            output / "rope", position_encoding_kwargs=options
        ).eval()
        nats, count = non_overlapping_nats(model, ids, 32)
        assert loss[f"rope+{scaling}", 32] == pytest.approx(nats / count, rel=1e-5)
    # a 30-step model hardly depends on positions, so check that the stretch reached the loads
    assert loads == [None, *({"scaling": s, "factor": f} for s in ("yarn", "linear") for f in (1.0, 2.0))]
    report = (output / "report.md").read_text()
    assert "| rope+yarn | " in report and "`rope+<scaling>`: the trained rope model" in report


def test_attention_bad_layer_and_head_exit_2(compared, tmp_path, capsys):
    model = str(compared[0] / "learned")
    for extra, message in (
        (["--layer", "5"], "--layer must be between -2 and 1"),
        (["--head", "9"], "--head must"),
    ):
        status, _, err = run_cli(["attention", model, "I had", "-o", str(tmp_path / "a.png"), *extra], capsys)
        assert status == 2 and err.count("\n") == 1 and message in err
