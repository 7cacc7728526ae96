"""Built-in tokenizer strategies: `regex` (word-level, vocabulary from the corpus), `gpt2-bpe` (GPT-2's
vocabulary) and `bpe` (a byte-level BPE trained on the corpus)."""

from hfgpt.hookspecs import hookimpl


@hookimpl
def register_tokenizers(register):
    register("regex", "hfgpt.tokenization.regex:RegexTokenizer")
    register("gpt2-bpe", "hfgpt.tokenization.bpe:GPT2BPETokenizer")
    register("bpe", "hfgpt.tokenization.bpe:BPETokenizer")
