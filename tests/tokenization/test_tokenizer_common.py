"""transformers' own `TokenizerTesterMixin` on hfgpt's four tokenizers.

Every tokenizer in transformers passes this mixin (saving and reloading, special-token setters, padding,
truncation, pairs, pre-tokenized words, chat templates...); running it here holds `RegexTokenizer`,
`GPT2BPETokenizer`, a trained `BPETokenizer` and the `chars` plugin's `CharTokenizer` to the same contract.
Each class is built with `from_corpus`/`train_bpe` (The Verdict) or GPT-2's files, saved with
`save_pretrained`, and the mixin loads it back with `AutoTokenizer.from_pretrained`, as it loads a Hub
tokenizer. `GPT2BPETokenizer` has no pad token, like the GPT-2 that transformers' own GPT-2 test loads; the
others get one, so the padding tests run on every kind of tokenizer hfgpt has.

The tests that skip are those that skip for transformers' own Python-backend tokenizers (CTRL's BPE, ESM's
word-level, ByT5's and CANINE's characters, checked with this same mixin): the assistant-mask and
`sequence_ids` tests need the Rust `tokenizers` backend, `test_chat_template_save_loading` needs a
`chat_template` parameter in `__init__` (transformers' GPT-2 tokenizer has none either), and without a pad
token the three padding tests skip, as they do for transformers' GPT-2.

The mixin is transformers' test code, which is not installed with the package; it is found at test time,
never copied into this repository:

1. `HFGPT_TRANSFORMERS_SOURCE`: a transformers checkout (or unpacked sdist) of the installed version;
2. the PyPI sdist of the installed version, which `pip download --no-deps --no-binary :all:` fetches into
   `~/.cache/hfgpt/transformers-<version>/sdist` (the folder tests/test_transformers_common.py uses too). The
   sdist ships `tests/test_tokenization_common.py` but not `tests/fixtures/sample_text.txt`, which the mixin
   reads in `setUpClass` and no test of this version uses: a stand-in is written beside it.

Without either (offline, no checkout) the module is skipped with the reason.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import types
import unittest
from pathlib import Path

import pytest
import transformers

VERSION = transformers.__version__
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "hfgpt" / f"transformers-{VERSION}"
COMMON = Path("tests") / "test_tokenization_common.py"
PACKAGE = "hfgpt_transformers_tokenizer_tests"  # transformers' tests/, under a name that clashes with nothing


def _from_sdist() -> Path | None:
    target = CACHE / "sdist"
    unpacked = target / f"transformers-{VERSION}"
    if not (unpacked / COMMON).exists():
        target.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-q"]
        done = subprocess.run(
            [*command, "-d", str(target), f"transformers=={VERSION}"], capture_output=True, timeout=180
        )
        archive = target / f"transformers-{VERSION}.tar.gz"
        if done.returncode or not archive.exists():
            return None
        with tarfile.open(archive) as sdist:
            sdist.extractall(target, filter="data")
    return unpacked


def transformers_source() -> Path | None:
    """The root of a transformers source tree of the installed version."""
    if "HFGPT_TRANSFORMERS_SOURCE" in os.environ:
        return Path(os.environ["HFGPT_TRANSFORMERS_SOURCE"])
    try:
        return _from_sdist()
    except (OSError, subprocess.SubprocessError, tarfile.TarError):
        return None


def import_tokenization_common(root: Path) -> types.ModuleType:
    """`tests/test_tokenization_common.py` of `root`, imported as part of a package (it imports its siblings)."""
    fixture = root / "tests" / "fixtures" / "sample_text.txt"
    if not fixture.exists():
        try:
            fixture.parent.mkdir(parents=True, exist_ok=True)
            fixture.write_text(
                "A stand-in for transformers' sample_text.txt, which its sdist does not ship.\n"
                "The mixin reads it into `_data` and no test of this version uses it.\n",
                encoding="utf-8",
            )
        except OSError as error:
            pytest.skip(f"cannot write the mixin's fixture {fixture}: {error}", allow_module_level=True)
    package = types.ModuleType(PACKAGE)
    package.__path__ = [str(root / "tests")]
    sys.modules[PACKAGE] = package
    return importlib.import_module(f"{PACKAGE}.test_tokenization_common")


SOURCE = transformers_source()
if SOURCE is None or not (SOURCE / COMMON).exists():
    pytest.skip(
        f"no transformers {VERSION} source tree with {COMMON} (set HFGPT_TRANSFORMERS_SOURCE to a checkout, or "
        "let `pip download transformers` reach PyPI)",
        allow_module_level=True,
    )
pytest.importorskip(
    "parameterized", reason="transformers' test mixins need `parameterized` (pip install -e .[dev])"
)

from hfgpt_chartok import CharTokenizer  # noqa: E402
from transformers import GPT2Tokenizer  # noqa: E402

import hfgpt  # noqa: E402, F401  (registers the tokenizer classes with AutoTokenizer)
from hfgpt import GPT2BPETokenizer, RegexTokenizer  # noqa: E402
from hfgpt.data.sources import default_corpus_path  # noqa: E402
from hfgpt.tokenization.bpe import BPETokenizer  # noqa: E402
from tests.helpers.tokenization import book_decode, book_split, char_ids_by_hand  # noqa: E402

PAD = "<|pad|>"

common = import_tokenization_common(SOURCE)
VERDICT = default_corpus_path().read_text(encoding="utf-8")


class HFGPTTokenizerTests(common.TokenizerTesterMixin):
    """The mixin on one hfgpt tokenizer, built by `build()` and saved where the mixin loads a Hub id from.

    `integration_expected_*` (the mixin's check of tokens, ids and decoding of a stress string) come from
    `references(saved_dir)`, an independent implementation for each class, never from the class under test.
    """

    # TokenizersExtractor rebuilds a tokenizer from a `tokenizer.json`, which Python-backend tokenizers do not
    # write (transformers' own, e.g. Reformer's, turn this test off the same way).
    test_tokenizer_from_extractor = False

    @classmethod
    def build(cls):
        raise NotImplementedError

    @classmethod
    def references(cls, saved: str) -> tuple[list[str], list[int], str]:
        raise NotImplementedError

    @classmethod
    def setUpClass(cls):
        cls.saved = tempfile.mkdtemp()
        cls.build().save_pretrained(cls.saved)
        cls.from_pretrained_id = [cls.saved]
        tokens, ids, decoded = cls.references(cls.saved)
        cls.integration_expected_tokens, cls.integration_expected_token_ids = tokens, ids
        cls.integration_expected_decoded_text = decoded
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        shutil.rmtree(cls.saved, ignore_errors=True)

    def test_conversion_reversible(self):
        # transformers marks it slow for its CI's hundreds of tokenizers; here it takes well under a second.
        common.TokenizerTesterMixin.test_conversion_reversible.__wrapped__(self)


def gpt2_tokenizer_references(saved: str) -> tuple[list[str], list[int], str]:
    """transformers' `GPT2Tokenizer` over the vocabulary and merges hfgpt saved: tokens, ids, decoded text."""
    with open(os.path.join(saved, "vocab.json"), encoding="utf-8") as f:
        vocab = json.load(f)
    with open(os.path.join(saved, "merges.txt"), encoding="utf-8") as f:
        merges = [tuple(line.split(" ")) for line in f.read().splitlines()[1:] if line]
    reference = GPT2Tokenizer(vocab=vocab, merges=merges)
    text = common.TokenizerTesterMixin.integration_test_input_string
    ids = reference.encode(text, add_special_tokens=False)
    return reference.tokenize(text), ids, reference.decode(ids, clean_up_tokenization_spaces=False)


class RegexTokenizerTest(HFGPTTokenizerTests, unittest.TestCase):
    tokenizer_class = RegexTokenizer

    @classmethod
    def build(cls):
        return RegexTokenizer.from_corpus(VERDICT, pad_token=PAD)

    @classmethod
    def references(cls, saved):
        """The book's split and decoding, over a vocabulary of The Verdict's sorted words built here."""
        words = sorted(set(book_split(VERDICT)))
        vocab = {token: i for i, token in enumerate([*words, "<|endoftext|>", "<|unk|>", PAD])}
        tokens = book_split(common.TokenizerTesterMixin.integration_test_input_string)
        ids = [vocab.get(token, vocab["<|unk|>"]) for token in tokens]
        return tokens, ids, book_decode([token if token in vocab else "<|unk|>" for token in tokens])


class GPT2BPETokenizerTest(HFGPTTokenizerTests, unittest.TestCase):
    tokenizer_class = GPT2BPETokenizer

    @classmethod
    def build(cls):
        return (
            GPT2BPETokenizer()
        )  # as transformers' GPT-2 test loads GPT-2: no pad token, three tests skip there too

    references = classmethod(lambda cls, saved: gpt2_tokenizer_references(saved))


class BPETokenizerTest(HFGPTTokenizerTests, unittest.TestCase):
    tokenizer_class = BPETokenizer

    @classmethod
    def build(cls):
        # A pad token of its own, added after the trained vocabulary: the padding tests run on byte-level BPE here
        return BPETokenizer.train_bpe(VERDICT, vocab_size=1000, show_progress=False, pad_token=PAD)

    references = classmethod(lambda cls, saved: gpt2_tokenizer_references(saved))


class CharTokenizerTest(HFGPTTokenizerTests, unittest.TestCase):
    tokenizer_class = CharTokenizer

    @classmethod
    def build(cls):
        return CharTokenizer.from_corpus(VERDICT, pad_token=PAD)

    @classmethod
    def references(cls, saved):
        """One id per character of The Verdict's sorted characters, counted by hand (test_properties.py)."""
        text = common.TokenizerTesterMixin.integration_test_input_string
        ids, decoded = char_ids_by_hand(VERDICT, text)
        return list(text), ids, decoded

    def get_clean_sequence(self, tokenizer, with_prefix_space=False, max_length=20, min_length=5):
        # The mixin's clean sequence joins tokens that decode to letters or a space; a character tokenizer's
        # space token makes it start with two spaces, which a list of words cannot carry (transformers' own
        # character tokenizers, ByT5 and CANINE, skip test_pretokenized_inputs over this). One space between
        # the same letters keeps the tests' question: do words encode as the sentence of those words?
        text, _ = super().get_clean_sequence(tokenizer, False, max_length, min_length)
        text = (" " if with_prefix_space else "") + " ".join(text.split())
        return text, tokenizer.encode(text, add_special_tokens=False)
