"""Properties every hfgpt tokenizer shares, at volume: batches, padding, rejected inputs; and the chars plugin.

The per-tokenizer id properties live next to their references: GPT-2 ids against tiktoken in test_bpe.py, the
book's split and decode in test_regex.py. Here the same three tokenizers (GPT2BPETokenizer, RegexTokenizer,
the `chars` plugin's CharTokenizer) are checked for what transformers promises of any tokenizer, against
references computed in the test from per-item calls, and CharTokenizer's ids against a vocabulary built by
hand. Each property runs in the default pass and, marked slow, at 10,000 examples in the volume pass.
"""

from __future__ import annotations

from unittest import mock

import pytest
from hfgpt_chartok import CharTokenizer
from hypothesis import given, settings
from hypothesis import strategies as st

from hfgpt import GPT2BPETokenizer, RegexTokenizer
from hfgpt.data.sources import default_corpus_path
from hfgpt.errors import TokenizerInputError
from hfgpt.tokenization import base as tokenization_base
from tests.helpers.tokenization import char_ids_by_hand, gpt2_text, pattern_text

VERDICT = default_corpus_path().read_text(encoding="utf-8")
SPECIALS = ("<|endoftext|>", "<|unk|>")

# Built once: the properties below never change a tokenizer (padding_side is passed per call).
TOKENIZERS = {
    "bpe": GPT2BPETokenizer(pad_token="<|endoftext|>"),
    "regex": RegexTokenizer.from_corpus(VERDICT, pad_token="<|pad|>"),
    "chars": CharTokenizer.from_corpus(VERDICT, pad_token="<|pad|>"),
}
names = pytest.mark.parametrize("name", list(TOKENIZERS))
# GPT-2's stress text (Unicode, whitespace runs, pieces of <|endoftext|>) or the book's delimiters and words.
texts = st.one_of(
    gpt2_text, pattern_text, st.lists(st.sampled_from(VERDICT.split()), max_size=8).map(" ".join)
)

# Inputs that are not text: each must be refused with TokenizerInputError, never encoded as something else.
_scalars = st.one_of(
    st.binary(),
    st.floats(),
    st.integers(),
    st.booleans(),
    st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3),
)
_mixed_ids_and_text = st.tuples(
    st.lists(st.one_of(st.integers(0, 100), st.text(max_size=5)), max_size=4),
    st.integers(0, 100),
    st.text(max_size=5),
    st.booleans(),
).map(lambda t: (t[0] + [t[1], t[2]])[:: -1 if t[3] else 1])  # [1, "a"] or ["a", 1], among other items
_text_with_a_stranger = st.tuples(
    st.lists(st.text(max_size=5), max_size=4), st.one_of(st.binary(), st.floats(), st.booleans(), st.none())
).map(lambda t: t[0] + [t[1]])
non_str = st.one_of(
    _scalars, _mixed_ids_and_text, _text_with_a_stranger, st.lists(st.booleans(), min_size=1, max_size=4)
)


def expected_padding(rows: list[list[int]], pad: int, side: str) -> tuple[list[list[int]], list[list[int]]]:
    """Padded ids and attention masks, from the unpadded (already truncated) rows."""
    width = max(map(len, rows))
    ids, masks = [], []
    for row in rows:
        fill = width - len(row)
        ids.append(row + [pad] * fill if side == "right" else [pad] * fill + row)
        masks.append([1] * len(row) + [0] * fill if side == "right" else [0] * fill + [1] * len(row))
    return ids, masks


@names
@pytest.mark.usefixtures("profile_pass")
@settings()  # max_examples from the profile: 100 by default, 10,000 in the volume pass
@given(
    batch=st.lists(texts, min_size=1, max_size=4),  # 4 texts show padding; more only cost time at volume
    max_length=st.integers(1, 12),
    side=st.sampled_from(["right", "left"]),
)
def test_batch_equals_per_item_calls_and_pads(name, batch, max_length, side):
    tok = TOKENIZERS[name]
    singles = [tok(text)["input_ids"] for text in batch]
    assert tok(batch)["input_ids"] == singles
    assert [tok.encode(text) for text in batch] == singles

    padded = tok(batch, padding=True, truncation=True, max_length=max_length, padding_side=side)
    ids, masks = expected_padding([ids[:max_length] for ids in singles], tok.pad_token_id, side)
    assert padded["input_ids"] == ids
    assert padded["attention_mask"] == masks


# Options that keep `tok(texts)` on hfgpt's plain batch path (no padding, truncation or extra outputs).
plain_options = st.fixed_dictionaries(
    {},
    optional={
        "add_special_tokens": st.booleans(),
        "split_special_tokens": st.booleans(),
        "return_token_type_ids": st.booleans(),
        "return_attention_mask": st.booleans(),
        "max_length": st.integers(1, 12),
        "verbose": st.booleans(),
    },
)
BOS_EOS = RegexTokenizer.from_corpus(VERDICT, bos_token="<|bos|>", eos_token="<|eos|>")


@pytest.mark.parametrize("name", [*TOKENIZERS, "regex_bos_eos"])
@pytest.mark.usefixtures("profile_pass")
@settings()  # max_examples from the profile: 100 by default, 10,000 in the volume pass
@given(batch=st.lists(texts, min_size=1, max_size=4), options=plain_options)
def test_plain_batch_path_returns_what_transformers_does(name, batch, options):
    tok = TOKENIZERS.get(name, BOS_EOS)
    got = tok(batch, **options)
    with mock.patch.object(tokenization_base, "_plain_batch", return_value=False):  # transformers' own path
        want = tok(batch, **options)
    assert dict(got) == dict(want)


@names
@pytest.mark.usefixtures("profile_pass")
@settings()  # max_examples from the profile: 100 by default, 10,000 in the volume pass
@given(value=non_str)
def test_non_str_input_is_rejected(name, value):
    tok = TOKENIZERS[name]
    with pytest.raises(TokenizerInputError):
        tok(value)
    with pytest.raises(TokenizerInputError):
        tok.encode(value)


# A corpus and a text made of its characters, the specials and, now and then, a character it lacks.
corpora_and_texts = st.text(min_size=1, max_size=40).flatmap(
    lambda corpus: st.tuples(
        st.just(corpus),
        st.lists(
            st.one_of(st.sampled_from(sorted(set(corpus))), st.sampled_from(SPECIALS), st.characters()),
            max_size=30,
        ).map("".join),
    )
)


@pytest.mark.usefixtures("profile_pass")
@settings()  # max_examples from the profile: 100 by default, 10,000 in the volume pass
@given(corpus_and_text=corpora_and_texts)
def test_chars_one_id_per_character_specials_and_round_trip(corpus_and_text):
    corpus, text = corpus_and_text
    tok = CharTokenizer.from_corpus(corpus)
    assert len(tok) == len(set(corpus)) + 2
    ids, decoded = char_ids_by_hand(corpus, text)
    assert tok.encode(text) == ids
    assert tok.decode(ids) == decoded  # == text when every character is in the corpus
    assert tok.decode(tok.encode(corpus)) == corpus


@pytest.mark.usefixtures("profile_pass")
@settings()  # max_examples from the profile: 100 by default, 10,000 in the volume pass
@given(
    corpus=st.one_of(
        st.binary(),
        st.lists(st.binary(), min_size=1, max_size=3),
        _text_with_a_stranger,
        st.integers(),
        st.floats(),
    ),
    cls=st.sampled_from([CharTokenizer, RegexTokenizer]),
)
def test_from_corpus_rejects_non_str_texts(corpus, cls):
    with pytest.raises(TokenizerInputError):
        cls.from_corpus(corpus)


@pytest.mark.parametrize("corpus", [b"", bytearray(b"abc"), 42, 3.5])
@pytest.mark.parametrize("cls", [CharTokenizer, RegexTokenizer])
def test_from_corpus_names_the_type_of_a_non_text_corpus(cls, corpus):
    # Regression (found by the property above): b"" said "the corpus is empty" and a number raised Python's
    # bare "'int' object is not iterable"; both now name the type and the fix.
    with pytest.raises(TokenizerInputError, match=rf"got {type(corpus).__name__} .*decode bytes first"):
        cls.from_corpus(corpus)
