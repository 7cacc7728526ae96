"""Tokenizers: text -> token ids, as transformers tokenizers that reload with `AutoTokenizer`.

* `base`: the shared machinery (`FastEncodeMixin`, `VocabularyTokenizer`, `<|endoftext|>`).
* `regex`: `RegexTokenizer`, the book's word-level tokenizer (strategy `regex`).
* `bpe`: `GPT2BPETokenizer`, GPT-2's byte-level BPE at GPT-2's ids (strategy `gpt2-bpe`), and
  `BPETokenizer`, a byte-level BPE trained on a corpus (strategy `bpe`).
* `strategies`: building a tokenizer strategy by name with its declared options.
"""

from hfgpt._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "BPETokenizer": "hfgpt.tokenization.bpe",
        "GPT2BPETokenizer": "hfgpt.tokenization.bpe",
        "RegexTokenizer": "hfgpt.tokenization.regex",
        "VocabularyTokenizer": "hfgpt.tokenization.base",
        "build_tokenizer": "hfgpt.tokenization.strategies",
    },
)
