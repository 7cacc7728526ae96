"""`hfgpt eval` and `hfgpt.evaluation`: the numbers against plain loops written out here, both protocols, lengths
a positional strategy cannot encode, the --json schema and the option errors."""

from __future__ import annotations

import json
import math

import pytest
import torch

import hfgpt
from hfgpt.cli import main
from hfgpt.data.sources import default_corpus_path
from hfgpt.evaluation import evaluate
from tests.helpers.evaluation import non_overlapping_nats, perplexity_guide_nats, stream

STORY = default_corpus_path().read_text()
HELD_OUT = [STORY[:1500], STORY[-900:]]  # two documents, joined with EOS
LENGTHS = (16, 40)
KEYS = {"length", "stride", "tokens", "bytes", "loss", "perplexity", "bits_per_byte", "encodable", "reason"}


def _model(position_encoding: str, tokenizer):
    config = hfgpt.HFGPTConfig.from_preset(
        "tiny",
        vocab_size=len(tokenizer),
        tokenizer_class="RegexTokenizer",
        position_encoding=position_encoding,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    return hfgpt.HFGPTForCausalLM(config).eval()


@pytest.fixture(scope="module")
def tokenizer():
    return hfgpt.RegexTokenizer.from_corpus(STORY)


@pytest.fixture(scope="module")
def saved(tmp_path_factory, tokenizer):
    """position encoding -> (model, directory): tiny models (64 positions) saved with their tokenizer."""
    out = {}
    for name in ("learned", "rope"):
        model = _model(name, tokenizer)
        path = tmp_path_factory.mktemp(name)
        model.save_pretrained(path)
        tokenizer.save_pretrained(path)
        out[name] = (model, path)
    return out


@pytest.fixture(scope="module")
def held_out_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "held-out.txt"
    path.write_text(HELD_OUT[0])
    return path


def test_non_overlapping_windows_match_a_plain_loop(saved, tokenizer):
    model = saved["rope"][0]
    ids = stream(tokenizer, HELD_OUT)
    results = evaluate(model, tokenizer, HELD_OUT, LENGTHS, batch_size=3)
    for length, result in zip(LENGTHS, results):
        nats, count = non_overlapping_nats(model, ids, length)
        assert (
            (result.length, result.stride, result.tokens)
            == (length, length, count)
            == (length, length, len(ids) - 1)
        )
        assert result.loss == pytest.approx(nats / count, rel=1e-5)
        assert result.perplexity == pytest.approx(math.exp(nats / count), rel=1e-5)


@pytest.mark.parametrize("position_encoding", ["learned", "rope"])
def test_sliding_windows_match_the_perplexity_guide(saved, tokenizer, position_encoding):
    model = saved[position_encoding][0]
    ids = stream(tokenizer, HELD_OUT)
    stride = 10
    results = evaluate(model, tokenizer, HELD_OUT, LENGTHS, stride=stride, batch_size=4)
    for length, result in zip(LENGTHS, results):
        nats, count = perplexity_guide_nats(model, ids, length, stride)
        assert count == len(ids) - 1  # every token but the first, exactly once
        assert (result.stride, result.tokens) == (stride, count)
        assert result.loss == pytest.approx(nats / count, rel=1e-5)
    # more context per scored token than non-overlapping windows give: a different number
    assert results[0].loss != pytest.approx(evaluate(model, tokenizer, HELD_OUT, 16)[0].loss, rel=1e-7)


def test_bits_per_byte_by_hand(saved, tokenizer):
    model = saved["learned"][0]
    texts = ["I had always thought\u2014Jack", "Gisburn rather a cheap genius"]
    # UTF-8 bytes: 24 ASCII characters + the 3-byte dash (an unknown token here), then 29 ASCII characters
    n_bytes = 24 + 3 + 29
    nats, count = non_overlapping_nats(model, stream(tokenizer, texts), 64)
    (result,) = evaluate(model, tokenizer, texts, [64])
    assert result.bytes == n_bytes
    assert result.tokens == count
    assert result.bits_per_byte == pytest.approx(nats / math.log(2) / n_bytes, rel=1e-5)


def test_a_learned_model_reports_lengths_past_its_positions_and_rope_evaluates_them(saved, tokenizer):
    ids = stream(tokenizer, HELD_OUT)
    learned = evaluate(saved["learned"][0], tokenizer, HELD_OUT, [64, 100])
    assert learned[0].encodable and learned[0].loss is not None
    assert not learned[1].encodable and learned[1].loss is learned[1].bits_per_byte is None
    assert "'learned' cannot encode 100 positions (it knows 64)" in learned[1].reason

    (rope,) = evaluate(saved["rope"][0], tokenizer, HELD_OUT, [100], batch_size=2)
    nats, count = non_overlapping_nats(saved["rope"][0], ids, 100)
    assert rope.encodable and rope.tokens == count
    assert rope.loss == pytest.approx(nats / count, rel=1e-5)


def test_cli_json_schema_and_numbers(saved, tokenizer, held_out_file, capsys):
    model, path = saved["learned"]
    argv = ["eval", str(path), str(held_out_file), "--lengths", "16,100", "--json", "--no-progress"]
    assert main(argv) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [set(row) for row in rows] == [KEYS, KEYS]
    ok, too_long = rows
    nats, count = non_overlapping_nats(model, stream(tokenizer, [HELD_OUT[0]]), 16)
    assert (ok["length"], ok["stride"], ok["tokens"], ok["encodable"], ok["reason"]) == (
        16,
        16,
        count,
        True,
        None,
    )
    assert ok["loss"] == pytest.approx(nats / count, rel=1e-5)
    assert ok["perplexity"] == pytest.approx(math.exp(ok["loss"]), rel=1e-9)
    assert ok["bytes"] == len(HELD_OUT[0].encode())
    assert too_long["length"] == 100 and too_long["encodable"] is False
    assert too_long["loss"] is too_long["perplexity"] is too_long["bits_per_byte"] is None


def test_cli_table_names_a_length_that_cannot_be_encoded(saved, held_out_file, capsys):
    path = saved["learned"][1]
    argv = ["eval", str(path), str(held_out_file), "--lengths", "32,128", "--stride", "8", "--no-progress"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "not evaluated: position encoding 'learned' cannot encode 128 positions (it knows 64)" in out
    assert any(line.split()[:2] == ["32", "8"] for line in out.splitlines())


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--lengths", "0"], "--lengths must be a comma-separated list of positive integers"),
        (["--lengths", "abc"], "got 'abc'"),
        (["--lengths", ""], "got ''"),
        (["--lengths", "16,,32"], "got '16,,32'"),
        (["--lengths", "-16"], "got '-16'"),
        (["--stride", "-1"], "--stride must be a positive integer, got -1"),
        (["--stride", "0"], "--stride must be a positive integer, got 0"),
        (
            ["--lengths", "16,32", "--stride", "17"],
            "--stride (17) must not exceed the evaluation length (16)",
        ),
        (["--batch-size", "0"], "--batch-size must be a positive integer, got 0"),
        (["--stride", "x"], "argument --stride: invalid int value: 'x'"),
        (["--position-options", "{scaling: yarn}"], "argument --position-options: must be a JSON object"),
        (
            ["--position-options", '["yarn"]'],
            "argument --position-options: must be a JSON object ({...}), got list",
        ),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else None,
)
def test_bad_options_exit_2_with_one_line_before_any_work(tmp_path, options, expected, capsys):
    # the model directory does not exist: an option error must come first
    try:
        code = main(["eval", str(tmp_path / "no-model"), *options])
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hfgpt eval: error: "), err
    assert expected in lines[0]


def test_cli_stretches_a_rope_model_with_position_options(tokenizer, held_out_file, tmp_path, capsys):
    # large weights: sharp attention, so the rotation angles visibly change the loss
    config = _model("rope", tokenizer).config
    config.initializer_range = 0.5
    torch.manual_seed(0)
    hfgpt.HFGPTForCausalLM(config).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    path = tmp_path
    options = {"scaling": "yarn", "factor": 4.0}
    argv = ["eval", str(path), str(held_out_file), "--lengths", "100", "--json", "--no-progress"]
    assert main([*argv, "--position-options", json.dumps(options)]) == 0
    (stretched,) = json.loads(capsys.readouterr().out)
    assert main(argv) == 0
    (plain,) = json.loads(capsys.readouterr().out)

    reference = hfgpt.HFGPTForCausalLM.from_pretrained(path, position_encoding_kwargs=options).eval()
    nats, count = non_overlapping_nats(reference, stream(tokenizer, [HELD_OUT[0]]), 100)
    assert stretched["loss"] == pytest.approx(nats / count, rel=1e-5)
    assert abs(stretched["loss"] - plain["loss"]) > 1e-2  # the option reached the model


def test_position_options_a_strategy_does_not_take_are_one_line(saved, held_out_file, capsys):
    argv = ["eval", str(saved["learned"][1]), str(held_out_file), "--no-progress"]
    assert main([*argv, "--position-options", '{"scaling": "yarn", "factor": 2}']) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown learned option(s) ['factor', 'scaling']" in err[0]


def test_a_missing_model_directory_is_one_line(tmp_path, capsys):
    assert main(["eval", str(tmp_path / "nothing"), "--no-progress"]) == 2
    assert "is not a model directory" in capsys.readouterr().err
