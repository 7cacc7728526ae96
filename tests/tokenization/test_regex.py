"""RegexTokenizer (issue 3) against the book's word-level tokenizer, re-implemented here as the reference.

The reference is the book's chapter 2 algorithm written out independently: ``re.split`` with the book's
pattern, strip, drop empty pieces; decoding joins with spaces and removes the space before punctuation.
Expected ids for the two sample sentences and the vocabulary size of The Verdict are the book's printed values.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from transformers import AutoTokenizer

import hfgpt
from hfgpt import RegexTokenizer
from hfgpt.data.sources import default_corpus_path
from hfgpt.tokenization.regex import split_words
from tests.helpers.tokenization import book_decode, book_split, pattern_text

VERDICT = default_corpus_path()


@pytest.fixture(scope="module")
def verdict() -> str:
    return VERDICT.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def tok(verdict) -> RegexTokenizer:
    return RegexTokenizer.from_corpus(verdict)


# --- splitting and the vocabulary -----------------------------------------------------------------------------


@pytest.mark.usefixtures("profile_pass")  # default and volume passes (conftest.py)
@given(st.one_of(pattern_text, st.text(max_size=80)))
def test_split_equals_the_books_split(text):
    assert split_words(text) == book_split(text)


@pytest.mark.usefixtures("profile_pass")  # default and volume passes (conftest.py)
@given(pattern_text.filter(lambda t: book_split(t)))
def test_vocab_is_sorted_words_then_specials(text):
    tok = RegexTokenizer.from_corpus(text)
    words = book_split(text)
    expected_vocab = sorted(set(words)) + ["<|endoftext|>", "<|unk|>"]
    assert [tok.convert_ids_to_tokens(i) for i in range(len(tok))] == expected_vocab
    assert tok.tokenize(text) == words
    assert tok.encode(text) == [expected_vocab.index(w) for w in words]
    assert tok.decode(tok.encode(text)) == book_decode(words)


def test_the_verdict_vocabulary_size_is_the_books(tok, verdict):
    # Book, section 2.3: 1130 distinct words; section 2.4: 1132 after adding <|endoftext|> and <|unk|>.
    assert len(set(book_split(verdict))) == 1130
    assert len(tok) == tok.vocab_size == 1132
    assert tok.convert_ids_to_tokens([1130, 1131]) == ["<|endoftext|>", "<|unk|>"]
    assert tok.eos_token_id == 1130 and tok.unk_token_id == 1131
    vocab = tok.get_vocab()
    assert [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])][:1130] == sorted(
        set(book_split(verdict))
    )


def test_case_is_kept_and_delimiters_are_tokens(tok):
    assert tok.tokenize("Hello, world. Is this-- a test?") == [
        "Hello",
        ",",
        "world",
        ".",
        "Is",
        "this",
        "--",
        "a",
        "test",
        "?",
    ]
    assert tok.convert_tokens_to_ids(["The", "the"]) != [tok.unk_token_id] * 2
    assert tok.convert_tokens_to_ids("The") != tok.convert_tokens_to_ids("the")


def test_from_corpus_accepts_an_iterable_of_texts(verdict):
    half = len(verdict) // 2
    cut = verdict.rfind(" ", 0, half)  # cut at a space so no word is split in two
    assert RegexTokenizer.from_corpus(iter([verdict[:cut], verdict[cut:]])).get_vocab() == (
        RegexTokenizer.from_corpus(verdict).get_vocab()
    )


# --- the book's examples ----------------------------------------------------------------------------------------


def test_books_simple_tokenizer_v1_example(tok):
    text = """"It's the last he painted, you know," Mrs. Gisburn said with pardonable pride."""
    ids = tok.encode(text)
    # Book, section 2.3 (SimpleTokenizerV1), printed output.
    assert ids == [1, 56, 2, 850, 988, 602, 533, 746, 5, 1126, 596, 5, 1, 67, 7, 38, 851, 1108, 754, 793, 7]
    assert (
        tok.decode(ids) == '" It\' s the last he painted, you know," Mrs. Gisburn said with pardonable pride.'
    )


def test_books_simple_tokenizer_v2_example_with_unknown_words_and_endoftext(tok):
    text = "Hello, do you like tea? <|endoftext|> In the sunlit terraces of the palace."
    ids = tok.encode(text)
    # Book, section 2.4 (SimpleTokenizerV2), printed output: "Hello" and "palace" are not in The Verdict.
    assert ids == [1131, 5, 355, 1126, 628, 975, 10, 1130, 55, 988, 956, 984, 722, 988, 1131, 7]
    assert tok.decode(ids) == "<|unk|>, do you like tea? <|endoftext|> In the sunlit terraces of the <|unk|>."


# --- unknown words, strict mode, decoding ----------------------------------------------------------------------


def test_unknown_words_map_to_unk(tok):
    assert tok.encode("Zyzzyva the Quux") == [
        tok.unk_token_id,
        tok.convert_tokens_to_ids("the"),
        tok.unk_token_id,
    ]


def test_strict_raises_naming_the_unknown_words(verdict):
    strict = RegexTokenizer.from_corpus(verdict, strict=True)
    assert strict.encode("the") == [strict.convert_tokens_to_ids("the")]
    with pytest.raises(ValueError) as excinfo:
        strict.encode("Zyzzyva met the Quux.")
    message = str(excinfo.value)
    assert "'Zyzzyva'" in message and "'Quux'" in message and "'the'" not in message
    assert "strict=False" in message  # names the fix


@pytest.mark.usefixtures("profile_pass")  # default and volume passes (conftest.py)
@given(pattern_text)
def test_decode_is_the_books_decode(tok, text):
    ids = tok.encode(text)
    tokens = tok.convert_ids_to_tokens(ids)
    assert tok.decode(ids) == book_decode(tokens)
    # Re-encoding decoded text gives the same ids: removing a space before punctuation never merges words.
    assert tok.encode(tok.decode(ids)) == ids


def test_decode_removes_space_before_punctuation_only(tok):
    ids = tok.convert_tokens_to_ids(["I", "had", "--", "the", ",", "(", '"', "!", ":", ";", "?"])
    assert tok.decode(ids) == book_decode(["I", "had", "--", "the", ",", "(", '"', "!", ":", ";", "?"])
    assert tok.decode(ids) == 'I had -- the,("! : ;?'


# --- special tokens, padding, batches ---------------------------------------------------------------------------


def test_special_tokens_order_and_add_special_tokens(verdict):
    plain = RegexTokenizer.from_corpus(verdict)
    the = plain.convert_tokens_to_ids("the")
    assert plain.encode("the", add_special_tokens=True) == [the]  # nothing configured: nothing added

    tok = RegexTokenizer.from_corpus(verdict, bos_token="<|bos|>", eos_token="<|eos|>", pad_token="<|pad|>")
    assert [tok.convert_ids_to_tokens(i) for i in range(1130, len(tok))] == [
        "<|endoftext|>",
        "<|unk|>",
        "<|bos|>",
        "<|eos|>",
        "<|pad|>",
    ]
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (1132, 1133, 1134)
    assert tok.encode("the", add_special_tokens=True) == [1132, the, 1133]
    assert tok.encode("the", add_special_tokens=False) == [the]

    eos_only = RegexTokenizer.from_corpus(verdict, eos_token="<|endoftext|>")
    assert len(eos_only) == 1132
    assert eos_only.encode("the the") == [the, the, 1130]


def test_padding_a_batch(verdict):
    tok = RegexTokenizer.from_corpus(verdict, pad_token="<|pad|>")
    batch = tok(["I had always thought", "the"], padding=True)
    pad = tok.pad_token_id
    assert pad == 1132
    assert batch["input_ids"][1] == [tok.convert_tokens_to_ids("the"), pad, pad, pad]
    assert batch["attention_mask"] == [[1, 1, 1, 1], [1, 0, 0, 0]]
    tensors = tok(["I had always thought", "the"], padding=True, return_tensors="pt")
    assert tuple(tensors["input_ids"].shape) == (2, 4)


def test_batch_equals_single_encodings(tok, verdict):
    lines = [line for line in verdict.splitlines() if line.strip()][:50]
    assert tok(lines)["input_ids"] == [tok.encode(line) for line in lines]


def test_endoftext_in_text_is_special_unless_split(tok):
    eot = tok.eos_token_id
    assert tok.encode("the<|endoftext|>the") == [988, eot, 988]
    # With split_special_tokens the marker is plain text split like any other (the book's behaviour): glued to
    # words it is part of one unknown word; on its own it is still the vocabulary word <|endoftext|>.
    assert tok.encode("the<|endoftext|>the", split_special_tokens=True) == [tok.unk_token_id]
    assert tok.encode("the <|endoftext|>", split_special_tokens=True) == [988, eot]


# --- saving and loading -----------------------------------------------------------------------------------------


def test_save_and_load_with_auto_tokenizer(tmp_path, verdict):
    tok = RegexTokenizer.from_corpus(verdict, bos_token="<|bos|>", pad_token="<|pad|>")
    tok.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "vocab.json").read_text(encoding="utf-8")) == tok.get_vocab()
    assert json.loads((tmp_path / "tokenizer_config.json").read_text())["tokenizer_class"] == "RegexTokenizer"
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert type(loaded) is hfgpt.RegexTokenizer
    assert loaded.get_vocab() == tok.get_vocab()
    sample = verdict[:2000] + " Zyzzyva <|endoftext|>"
    assert loaded.encode(sample) == tok.encode(sample)
    assert (
        loaded(["the", "I had"], padding=True)["input_ids"]
        == tok(["the", "I had"], padding=True)["input_ids"]
    )
    assert loaded.decode(loaded.encode(sample)) == tok.decode(tok.encode(sample))


# --- errors -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [3.5, 42, b"bytes", {"text": "a"}, ["the", 7], [b"the"]])
def test_non_string_input_is_a_type_error_naming_the_type(tok, value):
    expected = {float: "float", int: "int", bytes: "bytes", dict: "dict"}
    item = value[-1] if isinstance(value, list) else value
    with pytest.raises(TypeError, match=expected[type(item)]):
        tok(value)
    with pytest.raises(TypeError, match=expected[type(item)]):
        tok.encode(value)


@pytest.mark.parametrize("ids", [[1132], [-1], [0, 5000, 3]])
def test_decode_rejects_ids_out_of_range(tok, ids):
    with pytest.raises(ValueError, match="1132 ids"):
        tok.decode(ids)


def test_empty_corpus_is_an_error():
    with pytest.raises(ValueError, match="empty"):
        RegexTokenizer.from_corpus("  \n\t ")


def test_missing_vocabulary_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="from_corpus"):
        RegexTokenizer()
    with pytest.raises(FileNotFoundError, match="vocab.json"):
        RegexTokenizer(vocab_file=str(tmp_path / "vocab.json"))


@pytest.mark.parametrize(
    "content, match",
    [
        ('{"a": 0, "b": ', "corrupt"),
        (b"\xff\xfe\x00garbage", "corrupt"),
        ('["a", "b"]', "integer ids"),
        ('{"a": 0, "b": "1"}', "integer ids"),
        ('{"a": 0, "b": 0}', "duplicate or missing"),
        ('{"a": 0, "b": 2}', "duplicate or missing"),
    ],
)
def test_corrupt_vocabulary_is_an_error(tmp_path, tok, content, match):
    tok.save_pretrained(tmp_path)
    path = tmp_path / "vocab.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(ValueError, match=match):
        AutoTokenizer.from_pretrained(tmp_path)


def test_a_batch_mixing_ids_and_text_is_refused(tok):
    from hfgpt.errors import TokenizerInputError

    for mixed in ([1, "a"], ["a", 1], [True, False]):
        with pytest.raises(TokenizerInputError, match="expects"):
            tok(mixed)


def test_a_model_directory_without_tokenizer_files_does_not_load_another_tokenizer(tmp_path, verdict):
    from hfgpt.errors import TokenizerError

    tok = RegexTokenizer.from_corpus(verdict)
    hfgpt.HFGPTConfig.from_preset(
        "tiny", vocab_size=len(tok), tokenizer_class="RegexTokenizer"
    ).save_pretrained(tmp_path)
    with pytest.raises(TokenizerError, match="must hold its vocab.json"):
        AutoTokenizer.from_pretrained(tmp_path)  # GPT-2's BPE used to load here, for a 1,132-id model
    hfgpt.HFGPTConfig.from_preset("tiny", vocab_size=len(tok)).save_pretrained(tmp_path)  # no tokenizer_class
    with pytest.raises(TokenizerError):
        AutoTokenizer.from_pretrained(tmp_path)
