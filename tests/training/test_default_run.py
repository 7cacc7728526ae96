"""The README's main job, `hfgpt train` with no options, and the book's chapter-5 run by name.

The default run must read like the book's run of the same story (rasbt/LLMs-from-scratch, ch05): it
memorises the story (training loss < 1), its validation loss stays <= 8 (the book's: 6.452), and its greedy
continuation of "Every effort moves you" is made of the story's words. The story's words are read from the
bundled text itself, not copied from a run.
"""

from __future__ import annotations

import json
import os
import re
import string
import subprocess
import sys
from itertools import groupby

import pytest

from hfgpt.data.sources import default_corpus_path
from hfgpt.training.arguments import TrainArguments
from hfgpt.training.recipes import RECIPES

PROMPT = "Every effort moves you"
PUNCTUATION = string.punctuation + "\u2018\u2019\u201c\u201d\u2014"  # the story has none; a model could


def words(text: str) -> list[str]:
    """`text` split on whitespace, each piece stripped of punctuation and lower-cased; empty pieces dropped."""
    return [w for w in (piece.strip(PUNCTUATION).lower() for piece in text.split()) if w]


def longest_repeat(text: str) -> int:
    """The most times one word follows itself; a piece of punctuation alone (". . . .") counts as a word."""
    pieces = [piece.strip(PUNCTUATION).lower() or piece for piece in text.split()]
    return max((len(list(run)) for _, run in groupby(pieces)), default=0)


def test_word_checks_on_the_books_samples():
    """The checks pass the book's final sample and fail its first-epoch ones (ch05.ipynb's printed text)."""
    story = set(words(default_corpus_path().read_text(encoding="utf-8")))
    book = (
        'know," was one of the axioms he laid down across the Sevres and silver of an exquisitely appointed '
        "luncheon-table, when, on a later day, I had again run over from Monte Carlo; and Mrs. Gis"
    )
    assert all(w in story for w in words(book)[:-1]) and longest_repeat(book) == 1  # "gis": cut mid-word
    assert longest_repeat(",,,,,,,,,,,,.                                     ") == 1
    assert longest_repeat(", and, and, and, and, and, and, and") == 7  # the book's second epoch
    assert longest_repeat(" . . . . . . .") == 7 and longest_repeat("me me. Me, me!") == 4
    today = "You\nHe donrecOhOhOhOh threw me . . . . . . ."  # the default run's sample before these settings
    assert sum(w in story for w in words(today)) / len(words(today)) < 0.9


@pytest.mark.slow
def test_default_run_reads_like_the_books(tmp_path):
    """`hfgpt train --output-dir DIR`: the defaults, as a user runs them (threads included)."""
    out = tmp_path / "verdict"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "hfgpt.cli", "train", "--output-dir", str(out)],
        capture_output=True,
        text=True,
        timeout=1800,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]

    final = r"final training loss ([\d.]+) \(mean over steps [^)]*\), validation loss ([\d.]+)"
    printed = re.search(final, done.stdout)
    assert printed, done.stdout[-2000:]
    log = json.loads((out / "training_log.json").read_text())
    train_loss = [r["loss"] for r in log["history"] if "loss" in r][-1]
    eval_loss = [r["eval_loss"] for r in log["history"] if "eval_loss" in r][-1]
    assert (f"{train_loss:.3f}", f"{eval_loss:.3f}") == printed.groups()
    assert train_loss < 1.0, "the run no longer memorises the story"
    assert eval_loss <= 8.0, "the run is far more over-confident on unseen text than the book's (6.452)"

    sample = log["sample"]
    assert done.stdout.rstrip("\n").endswith(f"sample: {sample}".rstrip("\n"))
    assert sample.startswith(PROMPT)
    continuation = sample[len(PROMPT) :]
    story = set(words(default_corpus_path().read_text(encoding="utf-8")))
    found = words(continuation)
    assert len(found) >= 20, f"50 tokens should make 20 words or more: {continuation!r}"
    share = sum(w in story for w in found) / len(found)
    assert share >= 0.9, f"{share:.0%} of the words are the story's: {continuation!r}"
    assert longest_repeat(continuation) <= 3, continuation


# --- recipes ----------------------------------------------------------------------------------------------
# GPT_CONFIG_124M and train_model_simple's call in ch05.ipynb (rasbt/LLMs-from-scratch), typed from the book
BOOK = dict(emb_dim=768, n_heads=12, n_layers=12, context_length=256, drop_rate=0.1, qkv_bias=False)


def test_book_recipe_is_the_books_configuration(tmp_path):
    from hfgpt.training.pretraining import build_config, pretraining_arguments

    args = TrainArguments(recipe="book-ch05", output_dir=str(tmp_path / "book"))
    config = build_config(args)
    assert {name: getattr(config, name) for name in BOOK} == BOOK
    assert (args.epochs, args.batch_size, args.eval_every, args.val_fraction) == (10, 2, 5, 0.1)
    assert (args.tokenizer, args.max_length, args.stride, args.prompt) == ("gpt2-bpe", None, None, PROMPT)
    targs = pretraining_arguments(args, tmp_path / "staging")
    assert (targs.learning_rate, targs.weight_decay) == (4e-4, 0.1)
    # train_model_simple: optimizer.step() straight after backward(); no scheduler, warm-up or clipping
    assert targs.lr_scheduler_type == "constant" and targs.get_warmup_steps(90) == 0
    assert targs.max_grad_norm == 0


def test_book_recipe_builds_the_books_model():
    """ch05 prints 163,009,536 parameters for GPT_CONFIG_124M (context 1024, its own output head); at context
    256 that is 768 x 768 position embeddings fewer. GPTModel keeps PyTorch's default initialisation."""
    from hfgpt.modeling_hfgpt import HFGPTForCausalLM
    from hfgpt.training.pretraining import build_config

    config = build_config(TrainArguments(recipe="book-ch05"))
    assert (config.initialization, config.tie_word_embeddings) == ("torch", False)
    model = HFGPTForCausalLM(config)
    assert sum(p.numel() for p in model.parameters()) == 163_009_536 - (1024 - 256) * 768
    assert model.transformer.wte.weight.std().item() == pytest.approx(1.0, rel=0.01)  # nn.Embedding's N(0, 1)


def test_explicit_options_override_a_recipe():
    args = TrainArguments(recipe="book-ch05", epochs=2.0, learning_rate=3e-4, drop_rate=0.0)
    assert (args.epochs, args.learning_rate, args.drop_rate) == (2.0, 3e-4, 0.0)
    assert args.preset == "gpt2" and args.context_length == 256  # the rest is still the book's


def test_every_recipe_sets_only_train_options():
    names = {f for f in TrainArguments.__dataclass_fields__}
    for recipe in RECIPES.values():
        assert set(recipe.options) <= names
        TrainArguments(**recipe.options)  # each value passes the option's own check


def test_unknown_recipe_is_a_one_line_error():
    from hfgpt.errors import ConfigError

    with pytest.raises(ConfigError, match=r"--recipe must be one of book-ch05"):
        TrainArguments(recipe="book-ch99")
