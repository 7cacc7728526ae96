"""What `hfgpt compare` takes: the training arguments every strategy shares, and the comparison's own options.

The training arguments are `hfgpt train`'s own (`TrainArguments`), with other defaults (`COMPARE_DEFAULTS`:
a BPE tokenizer of 2,048 tokens, 3 layers x 128, L = 64, 1,500 steps of 4 windows, on the standard library's
modules); the fields the comparison sets for each strategy (`PER_STRATEGY`) are not options of the command.
What decides the trained models, and so whether a directory's models can be reused, is derived from the
resolved training arguments (`TrainArguments.settings`).
"""

from __future__ import annotations

import sysconfig
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from hfgpt.errors import ConfigError
from hfgpt.options import not_empty, option, positive, validate_fields
from hfgpt.training.arguments import TrainArguments

PROTOCOLS = ("non-overlapping", "sliding")
BUILT_IN_STRATEGIES = ("learned", "sinusoidal", "rope", "none")
# compared by default when their plugins (hfgpt-alibi, hfgpt-t5bias) are installed
PLUGIN_STRATEGIES = ("alibi", "t5")
ATTENTION_TEXT = "def add(a, b):\n    return a + b\n"
# The comparison's training defaults: small enough that six strategies train in minutes on a CPU.
COMPARE_DEFAULTS: dict[str, Any] = dict(
    tokenizer="bpe",  # its vocabulary: 2,048 tokens by default
    max_length=64,
    preset="compare-cpu",  # 3 layers x 128
    max_steps=1500,
    batch_size=4,
    learning_rate=2e-3,
    eval_every=100,
    max_eval_tokens=8192,
)
# TrainArguments fields the comparison sets for each strategy (see `Comparison.strategy_arguments`).
PER_STRATEGY = (
    "position_encoding",
    "position_encoding_layers",
    "output_dir",
    "prompt",
    "max_new_tokens",
    "overwrite",
    "resume",
    "epochs",
)


def comma_names(text: str) -> list[str]:
    """`"a, b,,a"` -> `["a", "b"]`: the names of a comma-separated option, blanks and repeats dropped."""
    return list(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))


def stdlib_corpus() -> list[str]:
    """The default corpus: the top-level modules of Python's standard library (about 5 MB on CPython 3.11),
    present on every machine that runs hfgpt, with no download."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(str(path) for path in root.glob("*.py"))
    if not files:
        raise ConfigError(f"no *.py files in the standard library folder {root}: pass a CORPUS")
    return files


def default_strategies() -> list[str]:
    """The built-in strategies, then the plugin strategies worth comparing that are installed."""
    from hfgpt.plugins import strategies

    installed = strategies("position_encoding")
    return [*BUILT_IN_STRATEGIES, *(name for name in PLUGIN_STRATEGIES if name in installed)]


@dataclass
class CompareOptions:
    """The comparison's own options (`hfgpt compare --help`, group "comparison")."""

    strategies: str | None = option(
        None,
        group="comparison",
        help="comma-separated positional strategies, built-in or from installed plugins (see `hfgpt plugins`) "
        f"(default: {','.join(BUILT_IN_STRATEGIES)}, and {' and '.join(PLUGIN_STRATEGIES)} when installed)",
    )
    eval_lengths: str | None = option(
        None, group="comparison", help="comma-separated evaluation lengths (default: L,2L,4L,8L)"
    )
    protocols: str = option(
        ",".join(PROTOCOLS), group="comparison", check=not_empty, help="evaluation protocols to run"
    )
    sliding_stride: int | None = option(
        None,
        group="comparison",
        check=positive,
        help="stride of the sliding protocol, at most the shortest evaluation length (default: L/2)",
    )
    rope_scalings: str = option(
        "",
        group="comparison",
        help="context extensions to evaluate the trained rope model with, comma-separated: linear, ntk, yarn; "
        "each is a series `rope+<name>` stretched to every evaluation length (factor = length / L)",
    )
    eval_tokens: int = option(
        16_384,
        group="comparison",
        check=positive,
        help="score at most this many held-out tokens per length (the first ones; the same for every strategy)",
    )
    attention_text: str = option(
        ATTENTION_TEXT, group="comparison", check=not_empty, help="text whose attention attention.png shows"
    )
    output_dir: str = option(
        "runs/compare", group="comparison", check=not_empty, help="where models, results and report go"
    )

    def __post_init__(self) -> None:
        validate_fields(self)


@dataclass
class Comparison:
    """A comparison: the training arguments every strategy shares, and the comparison's own options.

    Args:
        train (`TrainArguments`): one run's arguments; `corpus` empty means the standard library's modules and
            `context_length` None means the training length L (`max_length`).
        options (`CompareOptions`): strategies, evaluation lengths and protocols, output directory...
    """

    train: TrainArguments
    options: CompareOptions

    @classmethod
    def of(cls, **values: Any) -> Comparison:
        """A comparison from keyword arguments, each a field of `TrainArguments` or `CompareOptions`; training
        fields not given take `COMPARE_DEFAULTS`, then `TrainArguments`' defaults."""
        own = {f.name for f in fields(CompareOptions)}
        shared = {f.name for f in fields(TrainArguments)} - set(PER_STRATEGY)
        unknown = sorted(set(values) - own - shared)
        if unknown:
            raise TypeError(f"Comparison.of() got unexpected keyword arguments: {', '.join(unknown)}")
        options = CompareOptions(**{k: v for k, v in values.items() if k in own})
        train = TrainArguments(**{**COMPARE_DEFAULTS, **{k: v for k, v in values.items() if k not in own}})
        return cls(train, options)

    @property
    def max_length(self) -> int:
        return self.train.max_length or COMPARE_DEFAULTS["max_length"]

    def strategy_list(self) -> list[str]:
        if self.options.strategies is None:
            return default_strategies()
        names = comma_names(self.options.strategies)
        if not names:
            raise ConfigError(
                f"--strategies must name at least one strategy, got {self.options.strategies!r}"
            )
        return names

    def protocol_list(self) -> list[str]:
        names = comma_names(self.options.protocols)
        if not names or any(name not in PROTOCOLS for name in names):
            raise ConfigError(
                f"--protocols must be a comma-separated subset of {','.join(PROTOCOLS)}, "
                f"got {self.options.protocols!r}"
            )
        return names

    def length_list(self) -> list[int]:
        if self.options.eval_lengths is None:
            return [self.max_length * factor for factor in (1, 2, 4, 8)]
        try:
            lengths = [int(item) for item in self.options.eval_lengths.split(",")]
        except ValueError:
            lengths = []
        if not lengths or any(length <= 0 for length in lengths):
            raise ConfigError(
                "--eval-lengths must be comma-separated positive integers (e.g. 64,128), got "
                f"{self.options.eval_lengths!r}"
            )
        return sorted(set(lengths))

    def scaling_list(self) -> list[str]:
        from hfgpt.position_encoding import ROPE_SCALINGS

        names = comma_names(self.options.rope_scalings)
        if any(name not in ROPE_SCALINGS for name in names):
            raise ConfigError(
                f"--rope-scalings must be a comma-separated subset of {','.join(ROPE_SCALINGS)}, "
                f"got {self.options.rope_scalings!r}"
            )
        return names

    def check_position_options(self, strategies: list[str]) -> None:
        """`--position-options` holds one JSON object per compared strategy."""
        for name, options in (self.train.position_options or {}).items():
            if name not in strategies:
                raise ConfigError(
                    f"--position-options names {name!r}, which is not compared (strategies: "
                    f"{', '.join(strategies)}): give options per compared strategy, e.g. '{{\"rope\": {{...}}}}'"
                )
            if not isinstance(options, dict):
                raise ConfigError(
                    f"--position-options {name!r} must be a JSON object of options, got {options!r}"
                )

    def stride(self) -> int:
        return self.options.sliding_stride or max(1, self.max_length // 2)

    def strategy_arguments(self, strategy: str) -> TrainArguments:
        """The `hfgpt train` run of one strategy: identical for every strategy but `position_encoding` (and the
        directory it is saved in)."""
        context_length = self.train.context_length or self.max_length
        return replace(
            self.train,
            corpus=self.train.corpus or stdlib_corpus(),
            position_encoding=strategy,
            context_length=context_length,
            position_options=(self.train.position_options or {}).get(strategy),
            output_dir=str(Path(self.options.output_dir) / strategy),
            prompt="def",
            max_new_tokens=max(1, min(20, context_length // 2)),
        )

    def settings(self) -> dict[str, Any]:
        """What decides the trained models: a rerun in the same directory must match it to reuse them."""
        return self.train.settings()


__all__ = ["COMPARE_DEFAULTS", "Comparison", "CompareOptions", "PER_STRATEGY", "stdlib_corpus"]
