"""Special-token setters on hfgpt's tokenizers, against transformers' GPT-2 tokenizer over the same files.

Setting a special token to an ordinary token of the vocabulary (`tok.unk_token_id = 0`) or removing it
(`tok.unk_token = None`) must leave every token's id as it was; transformers' `GPT2Tokenizer`, built from the
same vocabulary and merges, is the reference for what the ids are.
"""

from __future__ import annotations

import pytest
from hfgpt_chartok import CharTokenizer

from hfgpt import GPT2BPETokenizer, RegexTokenizer
from hfgpt.data.sources import default_corpus_path
from hfgpt.errors import TokenizerError
from tests.helpers.tokenization import GPT2_DATA, hf_reference

VERDICT = default_corpus_path().read_text(encoding="utf-8")
SPECIALS = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")
BUILDERS = {
    "bpe": GPT2BPETokenizer,
    "regex": lambda: RegexTokenizer.from_corpus(VERDICT),
    "chars": lambda: CharTokenizer.from_corpus(VERDICT),
}


@pytest.fixture(scope="module")
def gpt2_reference():
    import json

    vocab = json.loads((GPT2_DATA / "encoder.json").read_text(encoding="utf-8"))
    lines = (GPT2_DATA / "vocab.bpe").read_text(encoding="utf-8").splitlines()[1:]
    return hf_reference(vocab, [tuple(line.split(" ")) for line in lines if line])


@pytest.mark.parametrize("name", list(BUILDERS))
@pytest.mark.parametrize("special", SPECIALS)
def test_a_special_token_set_to_an_ordinary_token_keeps_every_id(name, special):
    tok = BUILDERS[name]()
    vocab = tok.get_vocab()
    token, index = next(iter(vocab.items()))
    setattr(tok, f"{special}_id", index)
    assert getattr(tok, special) == token
    assert getattr(tok, f"{special}_id") == index
    sample = sorted(vocab.items(), key=lambda item: item[1])[:: max(1, len(vocab) // 50)]
    assert tok.convert_tokens_to_ids([t for t, _ in sample]) == [i for _, i in sample]


def test_gpt2_ids_after_setting_special_tokens_are_transformers_gpt2s(gpt2_reference):
    tok = GPT2BPETokenizer()
    tok.unk_token_id = 0  # "!", an ordinary token
    tok.bos_token = None
    tokens = ["Hello", "Ġworld", "!", "<|endoftext|>", "not-a-token"]
    reference = gpt2_reference
    reference.unk_token_id = 0
    assert tok.convert_tokens_to_ids(tokens) == reference.convert_tokens_to_ids(tokens)
    assert tok.unk_token == reference.unk_token == "!"


@pytest.mark.parametrize("name", ["regex", "chars"])
def test_unknown_token_removed_maps_unknown_pieces_to_none_and_encoding_names_them(name):
    tok = BUILDERS[name]()
    tok.unk_token = None
    assert tok.unk_token_id is None
    assert tok.convert_tokens_to_ids("§not-in-the-vocabulary§") is None
    with pytest.raises(TokenizerError, match="not in the vocabulary.*set tok.unk_token"):
        tok.encode("§ unknown §")
