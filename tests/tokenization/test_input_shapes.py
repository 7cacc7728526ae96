"""What hfgpt's tokenizers accept: every input shape transformers documents, and nothing that mixes ids and text.

- Refused: input that holds token ids and text together, in one sequence (`[1, "a"]`), in one batch
  (`[[1, 2], ["a"]]`) or across text and text_pair, and input holding anything but str and int. Each is a
  `TokenizerInputError` with one line naming the problem and the fix, raised before any encoding, on every call
  path (`tok(x)`, `tok.encode(x)`, pairs, targets, pre-tokenized words, padding, tensors).
- Accepted: a str, a batch of str, ids, batches of ids, pairs, batches of pairs and pre-tokenized words. The
  reference for text is transformers' own `GPT2Tokenizer` built from GPT-2's original files (pre-tokenized words
  against `add_prefix_space=True`, the setting transformers documents for word-split input); ids pass through
  unchanged; the word-level and character tokenizers encode words as the sentence of those words would encode,
  checked by hand (the book's split for words, one id per character for characters).
"""

from __future__ import annotations

import json

import pytest
from hfgpt_chartok import CharTokenizer
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import GPT2Tokenizer

from hfgpt import GPT2BPETokenizer, RegexTokenizer
from hfgpt.data.sources import default_corpus_path
from hfgpt.errors import TokenizerInputError
from tests.helpers.tokenization import GPT2_DATA, PIECES, book_split

VERDICT = default_corpus_path().read_text(encoding="utf-8")
TOKENIZERS = {
    "bpe": GPT2BPETokenizer(pad_token="<|endoftext|>"),
    "regex": RegexTokenizer.from_corpus(VERDICT, pad_token="<|pad|>"),
    "chars": CharTokenizer.from_corpus(VERDICT, pad_token="<|pad|>"),
}
names = pytest.mark.parametrize("name", list(TOKENIZERS))


def gpt2_reference(**kwargs) -> GPT2Tokenizer:
    """transformers' GPT-2 tokenizer (the `tokenizers` BPE model) over GPT-2's original vocabulary and merges."""
    vocab = json.loads((GPT2_DATA / "encoder.json").read_text(encoding="utf-8"))
    lines = (GPT2_DATA / "vocab.bpe").read_text(encoding="utf-8").splitlines()[1:]
    merges = [tuple(line.split(" ")) for line in lines if line]
    return GPT2Tokenizer(vocab=vocab, merges=merges, pad_token="<|endoftext|>", **kwargs)


REFERENCE = gpt2_reference()
WORDS_REFERENCE = gpt2_reference(add_prefix_space=True)


# --- refused: ids and text together, or anything but str and int ----------------------------------------------
MIXED = {
    "ids then text": [1, "a"],
    "text then ids": ["a", 1],
    "tuple of id and text": (1, "a"),
    "batch of one mixed row": [[1, "a"]],
    "batch of one mixed row, text first": [["a", 1]],
    "batch of one mixed tuple": [(1, "a")],
    "mixed row nested once more": [[[1, "a"]]],
    "ids row beside a text": [[1], "a"],
    "text beside an ids row": ["a", [1]],
    "ids row beside a word row": [[1, 2], ["a", "b"]],
    "word row beside an ids row": [["a", "b"], [1, 2]],
    "pair of ids and text": [([1], "a")],
    "pair of text and ids": [("a", [1])],
    "pair of ids and words": [([1], ["a"])],
    "ids beside a bool": [[1, True]],
    "text beside None": [["a", None]],
    "a float among ids": [[1, 2.0]],
    "bytes among texts": ["a", b"b"],
}
PATHS = {
    "tok(x)": lambda tok, x: tok(x),
    "tok.encode(x)": lambda tok, x: tok.encode(x),
    "tok(x, x)": lambda tok, x: tok(x, x),
    "tok(text_target=x)": lambda tok, x: tok(text_target=x),
    "tok(x, padding=True, return_tensors='pt')": lambda tok, x: tok(x, padding=True, return_tensors="pt"),
    "tok(x, is_split_into_words=True)": lambda tok, x: tok(x, is_split_into_words=True),
    "tok.encode(x, is_split_into_words=True)": lambda tok, x: tok.encode(x, is_split_into_words=True),
}
# Each side valid on its own; together they mix ids and text.
MIXED_ACROSS = {
    "ids, text pair": ([1, 2], "a"),
    "text, ids pair": ("a", [1, 2]),
    "ids batch, text batch": ([[1], [2]], ["a", "b"]),
    "text batch, ids batch": (["a", "b"], [[1], [2]]),
    "word lists, ids": ([["a"]], [[1]]),
}


def assert_refused(call) -> None:
    with pytest.raises(TokenizerInputError) as error:
        call()
    message = str(error.value)
    assert "\n" not in message and "expects" in message, message


@names
@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("shape", list(MIXED))
def test_input_mixing_ids_and_text_is_refused(name, path, shape):
    assert_refused(lambda: PATHS[path](TOKENIZERS[name], MIXED[shape]))


@names
@pytest.mark.parametrize("split", [False, True], ids=["text", "words"])
@pytest.mark.parametrize("shape", list(MIXED_ACROSS))
def test_text_and_text_pair_of_different_kinds_are_refused(name, shape, split):
    text, pair = MIXED_ACROSS[shape]
    assert_refused(lambda: TOKENIZERS[name](text, pair, is_split_into_words=split))


@names
def test_the_message_names_both_kinds_and_the_fix(name):
    tok = TOKENIZERS[name]
    with pytest.raises(TokenizerInputError, match=r"both str and int \(\[1, 'a'\]\).*tok\.decode\(ids\)"):
        tok([[1, "a"]])
    with pytest.raises(
        TokenizerInputError, match=r"not both: got text \('a'\) and ids \(\[1\]\).*separate calls"
    ):
        tok([[1], ["a"]])
    with pytest.raises(TokenizerInputError, match=r"got NoneType \(None\) in \['a', None\]"):
        tok([["a", None]])


@names
def test_refused_before_any_encoding(name):
    tok = TOKENIZERS[name]
    calls = []
    original = tok._encode_texts
    tok._encode_texts = lambda *args, **kwargs: calls.append(args) or original(*args, **kwargs)
    try:
        assert_refused(lambda: tok([["a long text", "to encode"], [1, "a"]]))
    finally:
        del tok._encode_texts
    assert calls == []


@names
@pytest.mark.parametrize("value", ["A b", [["a"], "b"]], ids=["str", "str row"])
def test_a_str_where_words_are_expected_is_refused_as_transformers_gpt2_does(name, value):
    with pytest.raises(TypeError):  # the reference refuses it as well
        WORDS_REFERENCE(value, is_split_into_words=True)
    with pytest.raises(TokenizerInputError, match="lists of words with is_split_into_words=True"):
        TOKENIZERS[name](value, is_split_into_words=True)


@names
@pytest.mark.parametrize("value", [[], ()], ids=["list", "tuple"])
def test_an_empty_batch_is_refused(name, value):
    assert_refused(lambda: TOKENIZERS[name](value))


# --- accepted: the shapes transformers documents ----------------------------------------------------------------
TEXT_SHAPES = {
    "str": (("Hello, world!",), {}),
    "batch": ((["Hello, world!", "A second <|endoftext|> text", ""],), {}),
    "tuple batch": ((("Hello", " there"),), {}),
    "pair": (("A question?", "An answer."), {}),
    "batch of pairs (tuples)": (([("q one", "a one"), ("q two", "a two")],), {}),
    "batch of pairs (lists)": (([["q one", "a one"]],), {}),
    "batch with a batch of pairs": ((["q one", "q two"], ["a one", "a two"]), {}),
    "padded batch": ((["short", "a longer text here"],), {"padding": True}),
    "truncated pair": (("one two three four", "five six seven"), {"truncation": True, "max_length": 5}),
    "specials split": (("a<|endoftext|>b",), {"split_special_tokens": True}),
}
WORD_SHAPES = {
    "words": ((["Hello,", "world"],), {}),
    "first word of one letter": ((["A"],), {}),
    "batch of word lists": (([["A"], ["b", "c"], ["Hello", "again!"]],), {}),
    "pair of word lists": ((["A", "b"], ["c"]), {}),
    "batch of pairs of word lists": (([(["A", "b"], ["c"]), (["d"], ["e", "f"])],), {}),
    "words with space and tab": (([" x", "\tx", "y"],), {}),
    "empty words": ((["", "a", ""],), {}),
    "special tokens in words": ((["<|endoftext|>", "a<|endoftext|>b"],), {}),
    "special tokens split": ((["<|endoftext|>", "a<|endoftext|>b"],), {"split_special_tokens": True}),
    "padded batch of word lists": (([["A"], ["b", "c", "d"]],), {"padding": True}),
    "empty word list": (([],), {}),
}


@pytest.mark.parametrize("shape", list(TEXT_SHAPES))
def test_gpt2_text_shapes_give_transformers_gpt2_ids(shape):
    args, kwargs = TEXT_SHAPES[shape]
    ours, reference = TOKENIZERS["bpe"](*args, **kwargs), REFERENCE(*args, **kwargs)
    assert ours["input_ids"] == reference["input_ids"]
    assert ours["attention_mask"] == reference["attention_mask"]
    if not isinstance(args[0], list) or not any(isinstance(item, (list, tuple)) for item in args[0]):
        assert TOKENIZERS["bpe"].encode(*args, **kwargs) == REFERENCE.encode(*args, **kwargs)


@pytest.mark.parametrize("shape", list(WORD_SHAPES))
def test_gpt2_words_give_transformers_gpt2_ids_with_add_prefix_space(shape):
    args, kwargs = WORD_SHAPES[shape]
    ours = TOKENIZERS["bpe"](*args, is_split_into_words=True, **kwargs)
    reference = WORDS_REFERENCE(*args, is_split_into_words=True, **kwargs)
    assert ours["input_ids"] == reference["input_ids"]
    assert ours["attention_mask"] == reference["attention_mask"]


def test_the_first_word_gets_gpt2s_prefix_space():
    assert TOKENIZERS["bpe"](["A"], is_split_into_words=True)["input_ids"] == [317]  # " A", not "A" (32)


@pytest.mark.usefixtures("profile_pass")  # default and volume passes (conftest.py)
@settings()  # max_examples from the profile: 100 by default, 10,000 in the volume pass
@given(
    st.lists(
        st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=8)), max_size=6), min_size=1, max_size=4
    )
)
def test_gpt2_words_equal_transformers_gpt2_on_random_words(batch):
    ours = TOKENIZERS["bpe"](batch, is_split_into_words=True)["input_ids"]
    assert ours == WORDS_REFERENCE(batch, is_split_into_words=True)["input_ids"]


@names
@pytest.mark.parametrize(
    "ids, kwargs, expected",
    [
        ([5, 6, 7], {}, [5, 6, 7]),
        ([[5, 6], [7]], {}, [[5, 6], [7]]),
        ((5, 6), {}, [5, 6]),
        ([5, 6], {"text_pair": [7]}, [5, 6, 7]),
        ([([5], [6]), ([7], [8, 9])], {}, [[5, 6], [7, 8, 9]]),
        ([5, 6], {"is_split_into_words": True}, [5, 6]),
        ([[5, 6], [7]], {"is_split_into_words": True}, [[5, 6], [7]]),
    ],
)
def test_ids_pass_through_unchanged(name, ids, kwargs, expected):
    tok = TOKENIZERS[name]
    assert tok(ids, add_special_tokens=False, **kwargs)["input_ids"] == expected
    assert tok.encode(ids, add_special_tokens=False, **kwargs) == expected


words = st.lists(st.sampled_from(VERDICT.split()[:400]), max_size=8)
CHAR_IDS = {char: i for i, char in enumerate(sorted(set(VERDICT)))}  # the chars vocabulary, by hand


@pytest.mark.usefixtures("profile_pass")
@settings()
@given(st.lists(words, min_size=1, max_size=4))
def test_regex_words_are_the_books_split_of_the_sentence(batch):
    tok = TOKENIZERS["regex"]
    vocab = tok.get_vocab()
    expected = [[vocab[word] for word in book_split(" ".join(row))] for row in batch]
    assert tok(batch, is_split_into_words=True, add_special_tokens=False)["input_ids"] == expected


@pytest.mark.usefixtures("profile_pass")
@settings()
@given(st.lists(words, min_size=1, max_size=4))
def test_chars_words_are_one_id_per_character_of_the_spaced_words(batch):
    tok = TOKENIZERS["chars"]
    expected = [[CHAR_IDS[char] for char in "".join(" " + word for word in row)] for row in batch]
    assert tok(batch, is_split_into_words=True, add_special_tokens=False)["input_ids"] == expected
