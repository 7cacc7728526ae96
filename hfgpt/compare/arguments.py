"""What `hfgpt compare` takes: the training arguments every strategy shares, and the comparison's own options.

The training arguments are `hfgpt train`'s own (`TrainArguments`), with other defaults, which depend on the
comparison's mode (`mode_defaults`):

* text (the default, `COMPARE_DEFAULTS`): a BPE tokenizer of 2,048 tokens, 3 layers x 128, L = 64, 1,500 steps
  of 4 windows, on the standard library's modules;
* `--task NAME` (`TASK_DEFAULTS`): a synthetic task of `hfgpt.tasks`, L = 32 tokens, 3 layers x 128;
* `--gpu-paper` (`GPU_PAPER_DEFAULTS`): the ALiBi paper's four strategies at L = 512, preset `paper-gpu`, GPT-2's
  tokenizer, on the whole standard library (every *.py under it but site-packages), for one large GPU.

The fields the comparison sets for each strategy (`PER_STRATEGY`) are not options of the command. What
decides the trained models, and so whether a directory's models can be reused, is derived from the resolved
training arguments (`Comparison.settings`).
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
# the ALiBi paper's Table 2 strategies, in hfgpt's names: what --gpu-paper compares
PAPER_STRATEGIES = ("sinusoidal", "rope", "t5", "alibi")
TASK_NAMES = ("copy", "reverse", "addition", "passkey")
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
    eval_batch_size=8,
    mixed_precision="no",
)
# --task: examples of up to 32 tokens, 64 a step; six strategies in minutes on a CPU.
TASK_DEFAULTS: dict[str, Any] = dict(
    COMPARE_DEFAULTS,
    max_length=32,
    max_steps=600,
    batch_size=64,
    learning_rate=2e-3,
    eval_every=100,
    eval_batch_size=64,
)
# --gpu-paper: the ALiBi paper's setting scaled to one H100/H200 and 20 minutes (see docs/positional-encodings.md).
GPU_PAPER_DEFAULTS: dict[str, Any] = dict(
    tokenizer="gpt2-bpe",
    max_length=512,
    preset="paper-gpu",
    max_steps=3000,
    batch_size=32,
    learning_rate=6e-4,
    eval_every=250,
    max_eval_tokens=262_144,
    eval_batch_size=8,
    mixed_precision="bf16",
)
GPU_PAPER_EVAL_TOKENS = 131_072
# Press et al.'s training length and evaluation lengths (appendix Table 2)
PAPER_TRAIN_LENGTH = 512
PAPER_EVAL_LENGTHS = (512, 1012, 2512, 4512)
# --task evaluates at these multiples of the training length
TASK_FACTORS = (1, 1.5, 2, 3, 4)
# Training fields whose default depends on the mode: None on the command line until the mode is known.
MODE_FIELDS = tuple(dict.fromkeys([*COMPARE_DEFAULTS, *TASK_DEFAULTS, *GPU_PAPER_DEFAULTS]))
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
    "split_seed",
)


def mode_defaults(task: str | None = None, gpu_paper: bool = False) -> dict[str, Any]:
    """The training defaults of a comparison's mode (see the module docstring)."""
    if task is not None:
        return TASK_DEFAULTS
    return GPU_PAPER_DEFAULTS if gpu_paper else COMPARE_DEFAULTS


def comma_names(text: str) -> list[str]:
    """`"a, b,,a"` -> `["a", "b"]`: the names of a comma-separated option, blanks and repeats dropped."""
    return list(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))


def stdlib_corpus(recursive: bool = False) -> list[str]:
    """The default corpus: the top-level modules of Python's standard library (about 5 MB on CPython 3.11),
    present on every machine that runs hfgpt, with no download; `recursive`: every *.py under the standard
    library's folder but site-packages (about 31 MB, with its packages and tests)."""
    root = Path(sysconfig.get_paths()["stdlib"])
    if recursive:
        found = (path for path in root.rglob("*.py") if "site-packages" not in path.relative_to(root).parts)
    else:
        found = root.glob("*.py")
    files = sorted(str(path) for path in found)
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
    """The comparison's own options (`hfgpt compare --help`, group "comparison").

    Options whose default depends on the mode (text, `--task`, `--gpu-paper`) are None until
    `Comparison.resolved()` fills them in.
    """

    strategies: str | None = option(
        None,
        group="comparison",
        help="comma-separated positional strategies, built-in or from installed plugins (see `hfgpt plugins`) "
        f"(default: {','.join(BUILT_IN_STRATEGIES)}, and {' and '.join(PLUGIN_STRATEGIES)} when installed; "
        f"{','.join(PAPER_STRATEGIES)} with --gpu-paper)",
    )
    task: str | None = option(
        None,
        group="comparison",
        choices=TASK_NAMES,
        help="compare length generalization on a synthetic task instead of perplexity on text: train on "
        "examples of up to L tokens, report exact-match accuracy at L, 1.5L, 2L, 3L and 4L (see hfgpt.tasks)",
    )
    seeds: int = option(
        1,
        group="comparison",
        check=positive,
        help="train every strategy this many times, with seeds --seed, --seed + 1, ... (other initialisation and "
        "data order, the same held-out split); the report gives means, 95%% confidence intervals and paired "
        "t-tests. With more than one, models go to OUTPUT_DIR/seed-<seed>/<strategy>/",
    )
    gpu_paper: bool = option(
        False,
        group="comparison",
        help="the ALiBi paper's comparison scaled to one large GPU: sinusoidal, rope, t5 and alibi at L = 512, "
        "preset paper-gpu, GPT-2's tokenizer, the whole standard library, evaluated at the paper's lengths "
        "(512, 1012, 2512, 4512); every option still applies",
    )
    eval_lengths: str | None = option(
        None,
        group="comparison",
        help="comma-separated evaluation lengths (default: L,2L,4L,8L; L,1.5L,2L,3L,4L with --task; the paper's "
        "with --gpu-paper)",
    )
    protocols: str | None = option(
        None,
        group="comparison",
        check=not_empty,
        help=f"evaluation protocols to run (default: {','.join(PROTOCOLS)}; not with --task)",
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
    eval_tokens: int | None = option(
        None,
        group="comparison",
        check=positive,
        help="score at most this many held-out tokens per length (the first ones; the same for every strategy) "
        f"(default: 16384; {GPU_PAPER_EVAL_TOKENS} with --gpu-paper)",
    )
    task_examples: int = option(
        200,
        group="comparison",
        check=positive,
        help="with --task: test examples per evaluation length (the same for every strategy and seed)",
    )
    attention_text: str | None = option(
        None,
        group="comparison",
        check=not_empty,
        help="text whose attention attention.png shows (default: a small function; with --task, a test example)",
    )
    output_dir: str | None = option(
        None,
        group="comparison",
        check=not_empty,
        help="where models, results and report go (default: runs/compare; runs/compare-TASK with --task, "
        "runs/compare-gpu-paper with --gpu-paper)",
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
        fields not given take the mode's defaults (`mode_defaults`), then `TrainArguments`' defaults."""
        own = {f.name for f in fields(CompareOptions)}
        shared = {f.name for f in fields(TrainArguments)} - set(PER_STRATEGY)
        unknown = sorted(set(values) - own - shared)
        if unknown:
            raise TypeError(f"Comparison.of() got unexpected keyword arguments: {', '.join(unknown)}")
        options = CompareOptions(**{k: v for k, v in values.items() if k in own})
        defaults = mode_defaults(options.task, options.gpu_paper)
        given = {k: v for k, v in values.items() if k not in own and v is not None}
        return cls(TrainArguments(**{**defaults, **given}), options)

    @classmethod
    def from_given(cls, train_values: dict[str, Any], options: CompareOptions) -> Comparison:
        """A comparison from parsed options: training fields that are None take the mode's defaults."""
        defaults = mode_defaults(options.task, options.gpu_paper)
        values = {k: (defaults[k] if v is None and k in defaults else v) for k, v in train_values.items()}
        return cls(TrainArguments(**values), options)

    @property
    def mode(self) -> str:
        """`text`, `task` or `gpu-paper`."""
        if self.options.task is not None:
            return "task"
        return "gpu-paper" if self.options.gpu_paper else "text"

    @property
    def max_length(self) -> int:
        return self.train.max_length or mode_defaults(self.options.task, self.options.gpu_paper)["max_length"]

    @property
    def output_dir(self) -> Path:
        if self.options.output_dir is not None:
            return Path(self.options.output_dir)
        if self.options.task is not None:
            return Path(f"runs/compare-{self.options.task}")
        return Path("runs/compare-gpu-paper" if self.options.gpu_paper else "runs/compare")

    @property
    def eval_tokens(self) -> int:
        if self.options.eval_tokens is not None:
            return self.options.eval_tokens
        return GPU_PAPER_EVAL_TOKENS if self.options.gpu_paper else 16_384

    def check_mode(self) -> None:
        """Options that do not apply to the comparison's mode are refused."""
        if self.options.task is None:
            return
        if self.options.gpu_paper:
            raise ConfigError("--task and --gpu-paper are two different comparisons: give one of them")
        text_only = {
            "CORPUS": bool(self.train.corpus),
            "--protocols": self.options.protocols is not None,
            "--sliding-stride": self.options.sliding_stride is not None,
            "--rope-scalings": bool(self.options.rope_scalings),
            "--eval-tokens": self.options.eval_tokens is not None,
        }
        given = [name for name, present in text_only.items() if present]
        if given:
            raise ConfigError(
                f"--task trains and scores on generated examples: {', '.join(given)} "
                f"{'is' if len(given) == 1 else 'are'} for text comparisons; leave "
                f"{'it' if len(given) == 1 else 'them'} out"
            )

    def strategy_list(self) -> list[str]:
        if self.options.strategies is None:
            return list(PAPER_STRATEGIES) if self.options.gpu_paper else default_strategies()
        names = comma_names(self.options.strategies)
        if not names:
            raise ConfigError(
                f"--strategies must name at least one strategy, got {self.options.strategies!r}"
            )
        return names

    def protocol_list(self) -> list[str]:
        if self.options.task is not None:
            return ["exact-match"]
        names = comma_names(
            self.options.protocols if self.options.protocols is not None else ",".join(PROTOCOLS)
        )
        if not names or any(name not in PROTOCOLS for name in names):
            raise ConfigError(
                f"--protocols must be a comma-separated subset of {','.join(PROTOCOLS)}, "
                f"got {self.options.protocols!r}"
            )
        return names

    def default_lengths(self) -> list[int]:
        L = self.max_length
        if self.options.task is not None:
            return [round(L * factor) for factor in TASK_FACTORS]
        if self.options.gpu_paper:  # the paper's 512, 1012, 2512, 4512 for L = 512
            return [round(L * n / PAPER_TRAIN_LENGTH) for n in PAPER_EVAL_LENGTHS]
        return [L * factor for factor in (1, 2, 4, 8)]

    def length_list(self) -> list[int]:
        if self.options.eval_lengths is None:
            return sorted(set(self.default_lengths()))
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

    def seed_list(self) -> list[int]:
        """The seeds every strategy is trained with: `--seed`, `--seed + 1`, ... (`--seeds` of them)."""
        return [self.train.seed + i for i in range(self.options.seeds)]

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

    def model_dir(self, strategy: str, seed: int | None = None) -> Path:
        """`OUTPUT_DIR/<strategy>` with one seed, `OUTPUT_DIR/seed-<seed>/<strategy>` with several."""
        if self.options.seeds == 1:
            return self.output_dir / strategy
        return self.output_dir / f"seed-{self.train.seed if seed is None else seed}" / strategy

    def strategy_arguments(self, strategy: str, seed: int | None = None) -> TrainArguments:
        """The `hfgpt train` run of one strategy and seed (default: `--seed`): identical for every strategy but
        `position_encoding` (and the directory it is saved in), and for every seed but the seed, which sets the
        initialisation and the data order; the held-out split keeps `--seed`'s (`split_seed`)."""
        context_length = self.train.context_length or self.max_length
        gpu_corpus = self.options.gpu_paper and not self.train.corpus
        return replace(
            self.train,
            corpus=self.train.corpus or (stdlib_corpus(recursive=True) if gpu_corpus else stdlib_corpus()),
            skip_bad_files=self.train.skip_bad_files or gpu_corpus,  # the standard library's tests hold some
            max_length=self.max_length,
            position_encoding=strategy,
            context_length=context_length,
            position_options=(self.train.position_options or {}).get(strategy),
            output_dir=str(self.model_dir(strategy, seed)),
            seed=self.train.seed if seed is None else seed,
            split_seed=self.train.seed,
            prompt="def",
            max_new_tokens=max(1, min(20, context_length // 2)),
        )

    def settings(self) -> dict[str, Any]:
        """What decides the trained models: a rerun in the same directory must match it to reuse them."""
        settings = self.train.settings()
        if self.options.task is not None:
            settings["task"] = self.options.task
        return settings


__all__ = [
    "COMPARE_DEFAULTS",
    "GPU_PAPER_DEFAULTS",
    "TASK_DEFAULTS",
    "Comparison",
    "CompareOptions",
    "PER_STRATEGY",
    "mode_defaults",
    "stdlib_corpus",
]
