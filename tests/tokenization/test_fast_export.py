"""hfgpt tokenizers exported as `tokenizer.json` fast tokenizers (`hfgpt.tokenization.fast.to_fast_tokenizer`).

Each export is checked against the hfgpt tokenizer it comes from (ids with and without special tokens, with
special tokens split, batches with padding, decoding with and without special tokens) and against the
independent references those tokenizers are themselves tested with: tiktoken's GPT-2 encoding, the book's
word split (`tests/tokenization/test_regex.py`) and a character vocabulary built by hand. Properties run 100
examples in the default pass and 10,000 in the volume pass (`profile_pass`).
"""

from __future__ import annotations

import re
import sys

import pytest
from hfgpt_chartok import CharTokenizer
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import AutoTokenizer, GPT2Tokenizer, PreTrainedTokenizerFast

from hfgpt import BPETokenizer, GPT2BPETokenizer, RegexTokenizer
from hfgpt.data.sources import default_corpus_path
from hfgpt.errors import TokenizerError
from hfgpt.tokenization.base import VocabularyTokenizer
from hfgpt.tokenization.fast import python_whitespace, to_fast_tokenizer
from tests.helpers.tokenization import book_decode, book_split, char_ids_by_hand, gpt2_text, pattern_text

VERDICT = default_corpus_path().read_text(encoding="utf-8")
SPECIALS = ("<|endoftext|>", "<|unk|>")

# Built once: the properties never change a tokenizer.
TOKENIZERS = {
    "gpt2": GPT2BPETokenizer(),
    "gpt2-pad": GPT2BPETokenizer(pad_token="<|pad|>"),  # an added token after the vocabulary
    "bpe": BPETokenizer.from_corpus(VERDICT, vocab_size=600),
    "regex": RegexTokenizer.from_corpus(VERDICT),
    "regex-bos-eos": RegexTokenizer.from_corpus(
        VERDICT, bos_token="<|bos|>", eos_token="<|eos|>", pad_token="<|pad|>"
    ),
    "chars": CharTokenizer.from_corpus(VERDICT),
}
FAST = {name: to_fast_tokenizer(tokenizer) for name, tokenizer in TOKENIZERS.items()}
names = pytest.mark.parametrize("name", list(TOKENIZERS))

words = st.sampled_from(VERDICT.split() + ["<|endoftext|>", "<|unk|>", "<|pad|>", "<|bos|>", "Zyzzyva"])
# GPT-2's stress text (Unicode, whitespace runs, pieces of <|endoftext|>), the book's delimiters, any text,
# and the story's words mixed with special tokens.
texts = st.one_of(gpt2_text, pattern_text, st.text(max_size=40), st.lists(words, max_size=10).map(" ".join))


# GPT-2's plain vocabulary and the plain word tokenizer have their own reference properties below; these are
# the same with an added token or BOS/EOS/PAD, which the exports must place at the same ids.
@pytest.mark.parametrize("name", ["gpt2-pad", "bpe", "regex-bos-eos", "chars"])
@pytest.mark.usefixtures("profile_pass")
@settings()  # max_examples from the profile: 100 by default, 10,000 in the volume pass
@given(text=texts)
def test_ids_and_decoding_equal_hfgpts(name, text):
    tok, fast = TOKENIZERS[name], FAST[name]
    for add_special_tokens in (True, False):
        assert (
            fast(text, add_special_tokens=add_special_tokens)["input_ids"]
            == tok(text, add_special_tokens=add_special_tokens)["input_ids"]
        )
    assert fast.encode(text, split_special_tokens=True) == tok.encode(text, split_special_tokens=True)
    ids = tok.encode(text)
    assert fast.decode(ids) == tok.decode(ids)
    assert fast.decode(ids, skip_special_tokens=True) == tok.decode(ids, skip_special_tokens=True)


@pytest.mark.usefixtures("profile_pass")
@settings()
@given(batch=st.lists(texts, min_size=1, max_size=4), side=st.sampled_from(["left", "right"]))
def test_padded_batches_with_bos_and_eos_equal_hfgpts(batch, side):
    tok, fast = TOKENIZERS["regex-bos-eos"], FAST["regex-bos-eos"]
    want = tok(batch, padding=True, padding_side=side)
    got = fast(batch, padding=True, padding_side=side)
    assert got["input_ids"] == want["input_ids"]
    assert got["attention_mask"] == want["attention_mask"]


@pytest.mark.usefixtures("profile_pass")
@settings()
@given(text=gpt2_text)
def test_gpt2_export_equals_tiktoken(tiktoken_gpt2, text):
    fast, tok = FAST["gpt2"], TOKENIZERS["gpt2"]
    ids = tiktoken_gpt2.encode(text, allowed_special="all")
    assert fast.encode(text) == ids
    assert fast.encode(text, split_special_tokens=True) == tiktoken_gpt2.encode_ordinary(text)
    assert fast.decode(ids) == text == tok.decode(ids)


def word_ids_by_hand(vocab: dict[str, int], text: str) -> tuple[list[int], str]:
    """The ids of `text` for the book's word tokenizer (split, strip, drop empty; unknown words are <|unk|>),
    with the two special tokens taken out whole first, and the book's decoding of those tokens."""
    tokens = []
    for i, part in enumerate(re.split("(" + "|".join(map(re.escape, SPECIALS)) + ")", text)):
        tokens.extend([part] if i % 2 else book_split(part))
    tokens = [token if token in vocab else "<|unk|>" for token in tokens]
    return [vocab[token] for token in tokens], book_decode(tokens)


@pytest.mark.usefixtures("profile_pass")
@settings()
@given(text=st.one_of(pattern_text, st.text(max_size=40), st.lists(words, max_size=10).map(" ".join)))
def test_word_and_character_exports_equal_references_built_by_hand(text):
    ids, decoded = word_ids_by_hand(TOKENIZERS["regex"].vocab, text)
    assert FAST["regex"].encode(text) == ids == TOKENIZERS["regex"].encode(text)
    assert FAST["regex"].decode(ids) == decoded == TOKENIZERS["regex"].decode(ids)
    ids, decoded = char_ids_by_hand(VERDICT, text)
    assert FAST["chars"].encode(text) == ids
    assert FAST["chars"].decode(ids) == decoded


def test_the_books_printed_examples():
    fast = FAST["regex"]
    text = """"It's the last he painted, you know," Mrs. Gisburn said with pardonable pride."""
    # Book, section 2.3 (SimpleTokenizerV1), printed ids and decoding.
    ids = [1, 56, 2, 850, 988, 602, 533, 746, 5, 1126, 596, 5, 1, 67, 7, 38, 851, 1108, 754, 793, 7]
    assert fast.encode(text) == ids
    assert (
        fast.decode(ids)
        == '" It\' s the last he painted, you know," Mrs. Gisburn said with pardonable pride.'
    )
    # Book, section 2.4 (SimpleTokenizerV2): "Hello" and "palace" are not in The Verdict.
    text = "Hello, do you like tea? <|endoftext|> In the sunlit terraces of the palace."
    ids = [1131, 5, 355, 1126, 628, 975, 10, 1130, 55, 988, 956, 984, 722, 988, 1131, 7]
    assert fast.encode(text) == ids
    assert (
        fast.decode(ids) == "<|unk|>, do you like tea? <|endoftext|> In the sunlit terraces of the <|unk|>."
    )
    assert fast.all_special_tokens == ["<|endoftext|>", "<|unk|>"]


@names
def test_saved_export_reloads_with_autotokenizer(name, tmp_path):
    FAST[name].save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert isinstance(loaded, PreTrainedTokenizerFast)
    text = VERDICT[:500] + "<|endoftext|> Zyzzyva\t\u00a0<|pad|>"
    assert loaded.encode(text) == TOKENIZERS[name].encode(text)
    assert loaded.special_tokens_map == FAST[name].special_tokens_map
    assert len(loaded) == len(TOKENIZERS[name])


def test_bos_is_named_but_never_added_for_tokenizers_without_one():
    tok, fast = TOKENIZERS["regex"], FAST["regex"]
    assert tok.bos_token is None and fast.bos_token == "<|endoftext|>"  # GPT-2's convention, for consumers
    assert fast.encode("the") == tok.encode("the") == [tok.vocab["the"]]


def test_python_whitespace_is_exactly_re_s():
    listed = {int(code, 16) for code in re.findall(r"\\x\{([0-9a-f]+)\}", python_whitespace())}
    assert listed == {c for c in range(sys.maxunicode + 1) if re.match(r"\s", chr(c))}
    assert {0x1C, 0x1F, 0x85, 0xA0, 0x3000} <= listed and 0x200B not in listed


def test_other_tokenizer_classes_are_refused():
    class Syllables(VocabularyTokenizer):  # a plugin's tokenizer that no export knows
        @classmethod
        def split(cls, text):
            return text.split()

    with pytest.raises(TokenizerError, match="cannot export a Syllables.*RegexTokenizer"):
        to_fast_tokenizer(Syllables.from_corpus("a b c"))

    class Lowercased(RegexTokenizer):  # the word tokenizer's pieces, changed
        @classmethod
        def split(cls, text):
            return super().split(text.lower())

    with pytest.raises(TokenizerError, match="cannot export a Lowercased"):
        to_fast_tokenizer(Lowercased.from_corpus("A b"))
    gpt2_files = TOKENIZERS["gpt2"]
    stock = GPT2Tokenizer(vocab=dict(gpt2_files.encoder), merges=list(gpt2_files.merges))
    with pytest.raises(TokenizerError, match="cannot export a GPT2Tokenizer"):
        to_fast_tokenizer(stock)
