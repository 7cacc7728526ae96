"""Recipes: named sets of `hfgpt train` option values (`hfgpt train --recipe NAME`).

A recipe fills in the options a user leaves at their defaults; an option given with another value wins, so
`hfgpt train --recipe book-ch05 --epochs 2` is the book's run, two epochs long. Applied by `TrainArguments`
itself, before its values are checked, so a recipe reaches the command line, Python and `hfgpt compare`
alike. This module is imported by `hfgpt train --help`: it imports neither torch nor transformers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from types import MappingProxyType
from typing import Any

from hfgpt.errors import ConfigError
from hfgpt.options import fill_defaults


@dataclass(frozen=True)
class Recipe:
    """A named run configuration: `TrainArguments` field values, applied where the user kept the defaults.

    Args:
        summary: one line for `hfgpt train --help`.
        source: where the values come from, for a reader who wants to check them.
        options: `TrainArguments` field name -> value.
    """

    summary: str
    source: str
    options: Mapping[str, Any]

    def apply(self, args) -> None:
        """Give each option of `args` (a `TrainArguments`) that still holds its default the recipe's value
        (`hfgpt.options.fill_defaults`: an option given explicitly at its default value takes it too)."""
        unknown = sorted(set(self.options) - {f.name for f in fields(args)})
        if unknown:
            raise ConfigError(f"the recipe sets {', '.join(unknown)}, which hfgpt train has no option for")
        fill_defaults(args, self.options)


# Raschka, "Build a Large Language Model (From Scratch)", chapter 5, section 5.2: GPT_CONFIG_124M at context
# 256, `train_model_simple` with AdamW(lr=0.0004, weight_decay=0.1), num_epochs=10, eval_freq=5, batch_size=2,
# train_ratio=0.90 of "The Verdict", windows of 256 tokens with stride 256 (no schedule, no warm-up, no
# gradient clipping: those arrive in appendix D).
BOOK_CH05 = Recipe(
    summary="the book's chapter-5 run: GPT-2 124M shape at context 256, dropout 0.1, AdamW 4e-4, weight decay "
    "0.1, batch 2, 10 epochs, constant rate, no warm-up, no clipping, validating every 5 steps",
    source="rasbt/LLMs-from-scratch, ch05/01_main-chapter-code/ch05.ipynb",
    options=MappingProxyType(
        dict(
            tokenizer="gpt2-bpe",
            val_fraction=0.1,
            preset="gpt2",  # 768 wide, 12 heads, 12 layers, no qkv bias
            initialization="torch",  # GPTModel's layers keep PyTorch's default initialisation
            tie_word_embeddings=False,  # GPTModel's out_head is a Linear of its own (163M parameters)
            context_length=256,
            drop_rate=0.1,
            output_dir="runs/book-ch05",
            epochs=10.0,
            batch_size=2,
            learning_rate=4e-4,
            lr_scheduler="constant",
            warmup_steps=0,
            weight_decay=0.1,
            max_grad_norm=0.0,
            seed=123,
            eval_every=5,
            prompt="Every effort moves you",
            max_new_tokens=50,
        )
    ),
)

RECIPES: Mapping[str, Recipe] = MappingProxyType({"book-ch05": BOOK_CH05})

__all__ = ["RECIPES", "Recipe"]
