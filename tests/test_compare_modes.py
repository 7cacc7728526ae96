"""`hfgpt compare --task`, `--seeds` and `--gpu-paper` end to end on tiny settings (a few steps each)."""

from __future__ import annotations

import contextlib
import io
import math
import re
from pathlib import Path

import pytest

from hfgpt.cli import main
from hfgpt.data.sources import default_corpus_path
from tests.test_compare import TINY, read_rows, run_cli

TASK = [
    "--task", "copy",
    "--preset", "tiny",
    "--max-length", "12",
    "--max-steps", "20",
    "--eval-every", "10",
    "--task-examples", "16",
    "--no-progress",
]  # fmt: skip


def quietly(argv: list[str]) -> str:
    """Run `hfgpt ARGV` in-process, which must succeed; its stderr."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        assert main(argv) == 0, err.getvalue()[-2000:]
    return err.getvalue()


@pytest.fixture(scope="module")
def task_run(tmp_path_factory) -> tuple[Path, str]:
    """`--task copy` with two strategies and two seeds."""
    output = tmp_path_factory.mktemp("task") / "out"
    log = quietly(
        ["compare", *TASK, "--strategies", "learned,rope", "--seeds", "2", "--output-dir", str(output)]
    )
    return output, log


def test_task_comparison_scores_every_seed_at_every_multiple_of_L(task_run):
    output, log = task_run
    rows = read_rows(output)
    assert list(rows[0]) == [
        "strategy",
        "eval_length",
        "protocol",
        "loss",
        "perplexity",
        "seed",
        "task",
        "accuracy",
    ]
    got = {(r["strategy"], int(r["eval_length"]), int(r["seed"])) for r in rows}
    # L = 12: 1x, 1.5x, 2x, 3x, 4x; learned cannot encode past its 12 positions
    rope = {("rope", n, seed) for n in (12, 18, 24, 36, 48) for seed in (123, 124)}
    assert got == rope | {("learned", 12, 123), ("learned", 12, 124)}
    for row in rows:
        assert row["task"] == "copy" and row["protocol"] == "exact-match"
        accuracy = float(row["accuracy"])
        assert accuracy * 16 == pytest.approx(round(accuracy * 16))  # a share of the 16 test examples
        assert float(row["perplexity"]) == pytest.approx(math.exp(float(row["loss"])), rel=1e-3)
    assert log.count(": trained in") == 4 and "[4/4]" not in log  # each run's result; no progress lines
    for seed in (123, 124):
        for strategy in ("learned", "rope"):
            assert (output / f"seed-{seed}" / strategy / "model.safetensors").is_file()
    assert (output / "accuracy.png").read_bytes()[:4] == b"\x89PNG"
    report = (output / "report.md").read_text()
    assert "length generalization on the copy task" in report
    assert "`learned` at 18: not evaluated" in report
    assert "Kazemnejad et al." in report and "## Which differences are significant" in report


def test_task_models_load_with_their_tokenizer_and_seeds_differ(task_run):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    output, _ = task_run
    first = AutoModelForCausalLM.from_pretrained(output / "seed-123" / "rope")
    second = AutoModelForCausalLM.from_pretrained(output / "seed-124" / "rope")
    tokenizer = AutoTokenizer.from_pretrained(output / "seed-123" / "rope")
    assert tokenizer("<|endoftext|> a b =", add_special_tokens=False)["input_ids"][1:3] == [0, 1]
    assert first.config.position_encoding == "rope" and first.config.vocab_size == len(tokenizer)
    assert not first.get_input_embeddings().weight.equal(second.get_input_embeddings().weight)  # other seed


def test_report_means_and_significance_follow_from_results_csv(task_run):
    """The report's mean for a cell and its paired test, recomputed from results.csv: with two seeds the t
    statistic has one degree of freedom, whose two-sided p-value is 1 - 2 atan(|t|) / pi (Cauchy)."""
    output, _ = task_run
    rows = read_rows(output)
    acc = {(r["strategy"], int(r["eval_length"]), int(r["seed"])): float(r["accuracy"]) for r in rows}
    report = (output / "report.md").read_text()
    a, b = acc["rope", 12, 123], acc["rope", 12, 124]
    mean = (a + b) / 2
    half = 12.706204736 * abs(a - b) / 2**0.5 / 2**0.5  # t_{0.975,1} * sd / sqrt(2), sd = |a - b| / sqrt(2)
    row = next(line for line in report.splitlines() if line.startswith("| rope |"))
    assert row.split("|")[2].strip().strip("*") == f"{mean * 100:.1f} ± {half * 100:.1f}"
    pair = next(line for line in report.splitlines() if line.startswith("| learned vs rope |"))
    d = [acc["learned", 12, s] - acc["rope", 12, s] for s in (123, 124)]
    cell = pair.split("|")[2].strip()
    if d[0] == d[1]:
        assert cell.startswith("**" if d[0] else f"{d[0] * 100:+.1f} pts, p = 1.000")
    else:
        t = (sum(d) / 2) / (abs(d[0] - d[1]) / 2**0.5 / 2**0.5)
        p = 1 - 2 * math.atan(abs(t)) / math.pi
        assert f"{sum(d) / 2 * 100:+.1f} pts, p = {p:.3f}" in cell
    assert pair.split("|")[3].strip() == "n/a"  # learned has no 18


def test_task_rerun_reuses_every_seed(task_run, capsys):
    output, _ = task_run
    argv = ["compare", *TASK, "--strategies", "learned,rope", "--seeds", "2", "--output-dir", str(output)]
    status, _, err = run_cli(argv, capsys)
    assert status == 0, err
    assert err.count("reusing the trained model") == 4 and "training 20 steps" not in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([str(default_corpus_path())], "--task trains and scores on generated examples: CORPUS is for text"),
        (["--protocols", "sliding"], "--protocols is for text comparisons"),
        (["--gpu-paper"], "--task and --gpu-paper are two different comparisons"),
        (
            ["--max-length", "10", "--task", "passkey"],
            "the passkey task needs examples of at least 14 tokens",
        ),
        (["--seeds", "0"], "--seeds must be positive"),
        (["--task", "sort"], "argument --task: invalid choice: 'sort'"),
    ],
)
def test_bad_task_options_exit_2_with_one_line(argv, message, tmp_path, capsys):
    output = tmp_path / "out"
    status, _, err = run_cli(["compare", *TASK, *argv, "--output-dir", str(output)], capsys)
    assert status == 2
    assert err.count("\n") == 1 and message in err
    assert not output.exists()


def test_text_comparison_with_seeds_reports_intervals_and_tests(tmp_path):
    output = tmp_path / "out"
    log = quietly(["compare", *TINY, "--strategies", "none,alibi", "--seeds", "2", "--protocols",
                   "non-overlapping", "--output-dir", str(output)])  # fmt: skip
    assert log.count(": trained in") == 4 and "[4/4]" not in log  # each run's result; no progress lines
    rows = read_rows(output)
    assert {(r["strategy"], r["seed"]) for r in rows} == {
        (s, n) for s in ("none", "alibi") for n in ("123", "124")
    }
    report = (output / "report.md").read_text()
    assert re.search(r"\| none \| \**\d+\.\d\d ± \d+\.\d\d", report)
    assert "| none vs alibi | ×" in report and "per-seed log-perplexities" in report


def test_gpu_paper_mode_smoke_on_the_cpu(tmp_path):
    """--gpu-paper's code path with a tiny model and the bundled story instead of the standard library."""
    from hfgpt.compare import Comparison

    comparison = Comparison.of(gpu_paper=True)
    assert comparison.strategy_list() == ["sinusoidal", "rope", "t5", "alibi"]
    assert comparison.length_list() == [512, 1012, 2512, 4512]
    assert (comparison.train.preset, comparison.train.tokenizer, comparison.max_length) == (
        "paper-gpu",
        "gpt2-bpe",
        512,
    )
    output = tmp_path / "out"
    quietly(["compare", "--gpu-paper", str(default_corpus_path()), "--preset", "tiny", "--tokenizer", "regex",
             "--max-length", "16", "--max-steps", "6", "--mixed-precision", "no", "--eval-tokens", "300",
             "--protocols", "non-overlapping", "--no-progress", "--output-dir", str(output)])  # fmt: skip
    rows = read_rows(output)
    # the paper's lengths scaled to L = 16: 512, 1012, 2512, 4512 x 16 / 512
    assert sorted({int(r["eval_length"]) for r in rows}) == [16, 32, 78, 141]
    assert {r["strategy"] for r in rows} == {"sinusoidal", "rope", "t5", "alibi"}
    report = (output / "report.md").read_text()
    assert "## Beside the ALiBi paper" in report and "ours 16 / paper 512" in report
    assert "the paper's 1.021 (19.65-20.07)" in report


def test_gpu_paper_corpus_is_the_whole_standard_library_but_site_packages():
    from hfgpt.compare.arguments import stdlib_corpus

    files = stdlib_corpus(recursive=True)
    top = stdlib_corpus()
    assert set(top) < set(files)
    assert any(f.endswith("/json/decoder.py") for f in files)
    assert not any("site-packages" in Path(f).parts for f in files)


def test_mode_defaults_apply_unless_given():
    from hfgpt.cli import build_parser
    from hfgpt.cli.compare import comparison_from
    from hfgpt.compare import Comparison
    from hfgpt.compare.arguments import COMPARE_DEFAULTS, TASK_DEFAULTS

    parser = build_parser()
    text = comparison_from(parser.parse_args(["compare"]))
    assert (text.max_length, text.train.max_steps) == (
        COMPARE_DEFAULTS["max_length"],
        COMPARE_DEFAULTS["max_steps"],
    )
    task = comparison_from(parser.parse_args(["compare", "--task", "copy", "--max-steps", "7"]))
    assert (task.max_length, task.train.max_steps) == (TASK_DEFAULTS["max_length"], 7)
    assert task.output_dir == Path("runs/compare-copy") and task.length_list() == [32, 48, 64, 96, 128]
    assert Comparison.of(task="copy", max_steps=7).settings() == task.settings()
    assert task.settings()["task"] == "copy" and "task" not in text.settings()


def test_seeds_share_the_held_out_split_of_split_seed():
    """What `--seeds` relies on: runs that differ in --seed but not --split-seed hold out the same documents."""
    from datasets import Dataset

    from hfgpt.training.arguments import TrainArguments
    from hfgpt.training.pretraining import split_corpus

    corpus = Dataset.from_dict({"text": [f"document {i} " * (5 + i % 7) for i in range(60)]})

    def held_out(**seeds) -> list[int]:
        return split_corpus(TrainArguments(**seeds), corpus, 1)[2].held_out.tolist()

    assert held_out(seed=1, split_seed=5) == held_out(seed=2, split_seed=5) == held_out(seed=5)
    assert held_out(seed=1) != held_out(seed=2)  # without it, the seed moves the split
