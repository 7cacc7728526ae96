"""Built-in tokenizer strategies: `regex` (word-level, vocabulary from the corpus), `gpt2-bpe` (GPT-2's
vocabulary) and `bpe` (a byte-level BPE trained on the corpus)."""

from __future__ import annotations

from collections.abc import Iterable

from hfgpt import hookimpl


def _require(corpus: Iterable[str] | None, name: str) -> Iterable[str]:
    if corpus is None:
        raise ValueError(
            f"the {name!r} tokenizer learns its vocabulary from a corpus: pass one (e.g. training files)"
        )
    return corpus


def build_regex(corpus: Iterable[str] | None = None, **options):
    from hfgpt.tokenization_hfgpt import RegexTokenizer

    return RegexTokenizer.from_corpus(_require(corpus, "regex"), **options)


def build_gpt2_bpe(corpus: Iterable[str] | None = None, **options):
    from hfgpt.tokenization_hfgpt_bpe import GPT2BPETokenizer

    return GPT2BPETokenizer(**options)


def build_bpe(corpus: Iterable[str] | None = None, vocab_size: int = 2000, **options):
    from hfgpt.tokenization_hfgpt_bpe import GPT2BPETokenizer

    return GPT2BPETokenizer.train_bpe(_require(corpus, "bpe"), vocab_size=vocab_size, **options)


@hookimpl
def register_tokenizers(register):
    register("regex", build_regex)
    register("gpt2-bpe", build_gpt2_bpe)
    register("bpe", build_bpe)
