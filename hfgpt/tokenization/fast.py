"""hfgpt tokenizers as `tokenizer.json` fast tokenizers, which load with transformers alone.

hfgpt's tokenizers are Python (`PreTrainedTokenizer`) classes that only load where hfgpt is installed.
`to_fast_tokenizer` rebuilds each as a `tokenizers` pipeline giving the same ids, wrapped in transformers'
`PreTrainedTokenizerFast`, the class serving tools (vLLM, TGI, llama.cpp's and CTranslate2's converters) read:

* `GPT2BPETokenizer` / `BPETokenizer`: the byte-level BPE of their vocab.json + merges.txt with GPT-2's
  pre-tokenization regex (the same one tiktoken runs for hfgpt), byte-level decoding.
* `RegexTokenizer`: a `WordLevel` model behind a pre-tokenizer that keeps exactly the pieces of
  `hfgpt.tokenization.regex.TOKEN_PATTERN` and drops the whitespace between them; unknown words become
  `<|unk|>`. Its decoder puts one space between tokens except before `, . ? ! " ( ) '`, as hfgpt does.
* the `chars` plugin's `CharTokenizer`: a `WordLevel` model over single characters, decoded by joining.

Special and added tokens keep their ids and are matched before pre-tokenization, as in hfgpt; a tokenizer
that adds BOS/EOS (`add_bos`/`add_eos`) gets the same template. What cannot carry over: `strict=True` (a fast
tokenizer maps unknown pieces to `<|unk|>` instead of raising).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING

from hfgpt.errors import TokenizerError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

# Characters after which hfgpt's word decoding removes the space (`regex.DETOKENIZE_PATTERN`).
NO_SPACE_BEFORE = ",.?!\"()'"


@lru_cache(maxsize=1)
def python_whitespace() -> str:
    """`\\s` of Python's `re` (for str patterns), as Oniguruma escapes (`\\x{9}\\x{a}...`) to put in a class.

    Python's `\\s` is `str.isspace()`; Oniguruma's (the regex engine of `tokenizers`) lacks the separators
    U+001C..U+001F. Spelling the characters out makes the word pieces Python's."""
    return "".join(f"\\x{{{c:x}}}" for c in range(sys.maxunicode + 1) if chr(c).isspace())


def _class_name(tokenizer) -> str:
    return type(tokenizer).__name__


def to_fast_tokenizer(tokenizer) -> PreTrainedTokenizerFast:
    """A `PreTrainedTokenizerFast` giving the same ids as the hfgpt `tokenizer`, for `save_pretrained` into a
    directory that loads with `AutoTokenizer` where hfgpt is not installed.

    Dispatches on the exact class: `GPT2BPETokenizer` and `BPETokenizer` (byte-level BPE), `RegexTokenizer`
    (words), the `chars` plugin's `CharTokenizer` (characters). Any other class, subclasses of these included
    (they may split or join differently), raises `TokenizerError`.
    """
    pipeline = _pipelines().get(type(tokenizer))
    if pipeline is None:
        raise TokenizerError(
            f"cannot export a {_class_name(tokenizer)} as a fast tokenizer: tokenizer.json exports exist for "
            f"{', '.join(EXPORTABLE)}"
        )
    return _wrap(tokenizer, pipeline(tokenizer))


EXPORTABLE = ("GPT2BPETokenizer", "BPETokenizer", "RegexTokenizer", "CharTokenizer (the chars plugin)")


def _pipelines() -> dict[type, Callable]:
    """tokenizer class -> the function building its `tokenizers` pipeline."""
    from hfgpt.tokenization.bpe import BPETokenizer, GPT2BPETokenizer
    from hfgpt.tokenization.regex import RegexTokenizer

    pipelines: dict[type, Callable] = {
        GPT2BPETokenizer: _bpe_pipeline,
        BPETokenizer: _bpe_pipeline,
        RegexTokenizer: _word_pipeline,
    }
    try:
        from hfgpt_chartok import CharTokenizer
    except ImportError:  # the plugin is not installed: no tokenizer can be one of its
        return pipelines
    return {**pipelines, CharTokenizer: _char_pipeline}


def _bpe_pipeline(tokenizer):
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

    from hfgpt.tokenization.bpe import GPT2_PATTERN

    model = models.BPE(
        vocab=dict(tokenizer.encoder),
        merges=list(tokenizer.merges),
        dropout=None,
        continuing_subword_prefix="",
        end_of_word_suffix="",
        fuse_unk=False,
    )
    pipeline = Tokenizer(model)
    # hfgpt splits with tiktoken's form of GPT-2's regex; the same regex here (rather than ByteLevel's own
    # copy of it) makes the pieces the same by construction, then ByteLevel maps bytes to characters.
    pipeline.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(GPT2_PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    pipeline.decoder = decoders.ByteLevel()
    return pipeline


def _vocabulary_pipeline(tokenizer):
    from tokenizers import Tokenizer, models

    return Tokenizer(models.WordLevel(vocab=dict(tokenizer.vocab), unk_token=tokenizer.unk_token))


def _word_pipeline(tokenizer):
    from tokenizers import Regex, decoders, pre_tokenizers

    from hfgpt.tokenization.regex import TOKEN_PATTERN

    pipeline = _vocabulary_pipeline(tokenizer)
    pattern = TOKEN_PATTERN.pattern.replace(r"\s", python_whitespace())
    # `removed` + `invert`: the pattern's matches are the pieces, everything between them (whitespace) goes.
    pipeline.pre_tokenizer = pre_tokenizers.Split(Regex(pattern), behavior="removed", invert=True)
    # " ".join(tokens), then no space before the NO_SPACE_BEFORE characters: a space before every token that
    # does not start with one of them, and none before the first token.
    no_space = re.escape(NO_SPACE_BEFORE)
    pipeline.decoder = decoders.Sequence(
        [
            decoders.Replace(Regex(f"^(?![{no_space}])"), " "),
            decoders.Fuse(),
            decoders.Strip(" ", 1, 0),
        ]
    )
    return pipeline


def _char_pipeline(tokenizer):
    from tokenizers import Regex, decoders, pre_tokenizers

    pipeline = _vocabulary_pipeline(tokenizer)
    pipeline.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    pipeline.decoder = decoders.Fuse()
    return pipeline


def _wrap(tokenizer, pipeline) -> PreTrainedTokenizerFast:
    """`pipeline` with `tokenizer`'s added and special tokens at their ids, its BOS/EOS template, and transformers'
    tokenizer settings (special-token names, padding side, maximum length)."""
    from tokenizers import AddedToken
    from tokenizers.processors import TemplateProcessing
    from transformers import PreTrainedTokenizerFast

    added = sorted(tokenizer.added_tokens_decoder.items())
    vocab_size = pipeline.get_vocab_size(with_added_tokens=False)
    for (
        index,
        token,
    ) in added:  # ids beyond the model's vocabulary are appended in order, so must be contiguous
        if index >= vocab_size and pipeline.token_to_id(token.content) is None:
            if index != pipeline.get_vocab_size(with_added_tokens=True):
                raise TokenizerError(
                    f"{_class_name(tokenizer)} has added token {token.content!r} at id {index}, leaving a gap in "
                    "its ids; a tokenizer.json cannot hold that"
                )
        pipeline.add_tokens(
            [
                AddedToken(
                    token.content,
                    single_word=token.single_word,
                    lstrip=token.lstrip,
                    rstrip=token.rstrip,
                    normalized=False,
                    special=token.special,
                )
            ]
        )
    for index, token in added:
        got = pipeline.token_to_id(token.content)
        if got != index:
            raise TokenizerError(
                f"added token {token.content!r} has id {index} in {_class_name(tokenizer)} but {got} in the export"
            )

    add_bos, add_eos = getattr(tokenizer, "add_bos", False), getattr(tokenizer, "add_eos", False)
    if add_bos or add_eos:
        bos = [tokenizer.bos_token] if add_bos else []
        eos = [tokenizer.eos_token] if add_eos else []
        single = " ".join([*bos, "$A", *eos])
        pair = " ".join([*bos, "$A", *eos, *bos, "$B", *eos])
        specials = {t: pipeline.token_to_id(t) for t in (*bos, *eos)}
        pipeline.post_processor = TemplateProcessing(
            single=single, pair=pair, special_tokens=list(specials.items())
        )

    names = ("bos_token", "eos_token", "unk_token", "pad_token")
    specials = {name: getattr(tokenizer, name) for name in names if getattr(tokenizer, name) is not None}
    # A tokenizer without BOS names its EOS as BOS too, GPT-2's convention (hfgpt's GPT-2 tokenizers have one
    # <|endoftext|> for both): never added to encodings (add_bos_token stays False), but consumers such as
    # CTranslate2's converter write the BOS token's string and fail on none.
    specials.setdefault("bos_token", specials.get("eos_token"))
    return PreTrainedTokenizerFast(
        tokenizer_object=pipeline,
        **{name: token for name, token in specials.items() if token is not None},
        add_bos_token=add_bos,
        add_eos_token=add_eos,
        clean_up_tokenization_spaces=False,
        model_max_length=tokenizer.model_max_length,
        padding_side=tokenizer.padding_side,
        truncation_side=tokenizer.truncation_side,
    )


__all__ = ["EXPORTABLE", "to_fast_tokenizer"]
