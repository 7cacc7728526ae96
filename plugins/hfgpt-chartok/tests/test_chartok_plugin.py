"""The chars strategy through its installed entry point: discovery, the CLI, round trips, save/load."""

import json
import os
import subprocess
import sys

import pytest
from hfgpt_chartok import CharTokenizer

from hfgpt.data.sources import default_corpus_path
from hfgpt.plugins import get_tokenizer_class
from hfgpt.testing import assert_registered

VERDICT = default_corpus_path()


def test_discovered_through_the_installed_entry_point():
    assert_registered("tokenizer", "chars", "hfgpt-chartok", CharTokenizer)


def test_cli_counts_one_token_per_character(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "hfgpt", "tokenize", "--tokenizer", "chars", "--json", str(VERDICT)],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    result = json.loads(out.stdout)
    text = VERDICT.read_text()
    assert result["total"]["tokens"] == len(text) == 20479
    assert result["vocab_size"] == len(set(text)) + 2


def test_round_trip_specials_and_save_load(tmp_path):
    text = VERDICT.read_text()
    tok = get_tokenizer_class("chars").from_corpus([text])
    sample = text[:300]
    ids = tok.encode(sample)
    assert ids == [sorted(set(text)).index(c) for c in sample]  # by hand: sorted characters
    assert tok.decode(ids) == sample
    assert tok.encode("a<|endoftext|>b") == [tok.vocab["a"], tok.eos_token_id, tok.vocab["b"]]
    assert tok.encode("€") == [tok.unk_token_id]  # not in the story
    tok.save_pretrained(tmp_path)
    assert CharTokenizer.from_pretrained(tmp_path).encode(sample) == ids


def test_special_tokens_in_text_are_one_id_each():
    tok = get_tokenizer_class("chars").from_corpus(["abc"])
    assert tok.encode("<|unk|>") == [tok.unk_token_id]  # not seven character ids
    assert tok.encode("a<|unk|>b<|endoftext|>") == [
        tok.vocab["a"],
        tok.unk_token_id,
        tok.vocab["b"],
        tok.eos_token_id,
    ]
    assert tok.convert_tokens_to_ids(tok.tokenize("<|unk|>")) == tok.encode("<|unk|>")


def test_a_corpus_of_bytes_is_refused():
    from hfgpt.errors import TokenizerInputError

    with pytest.raises(TokenizerInputError, match="bytes"):
        CharTokenizer.from_corpus([b"some bytes"])


def test_a_model_trained_with_chars_reloads_and_generates_in_fresh_processes(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    trained = subprocess.run(
        [sys.executable, "-m", "hfgpt", "train", str(VERDICT), "--tokenizer", "chars", "--preset", "tiny",
         "--max-length", "32", "--epochs", "1", "--no-progress", "--max-new-tokens", "3", "--output-dir", str(out)],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-2000:]
    reloaded = subprocess.run(
        [sys.executable, "-c", "import sys, hfgpt; from transformers import AutoTokenizer; "
         "tok = AutoTokenizer.from_pretrained(sys.argv[1]); print(type(tok).__name__, tok.encode('I had'))", str(out)],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    text = VERDICT.read_text()
    expected = [sorted(set(text)).index(c) for c in "I had"]
    assert reloaded.stdout.split(maxsplit=1) == ["CharTokenizer", f"{expected}\n"], reloaded.stderr[-2000:]
    generated = subprocess.run(
        [sys.executable, "-m", "hfgpt", "generate", str(out), "I had", "--max-new-tokens", "5"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert generated.returncode == 0 and generated.stdout.startswith("I had"), generated.stderr[-2000:]
