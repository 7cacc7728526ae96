"""The options of a GPU-ready run, on the CPU: mixed precision auto, gradient accumulation equal to the large
batch, warm-up ratio and the cosine floor, TensorBoard and W&B reporting, --init-from, --config files; each
refused in one line before any work when it cannot be honoured."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer, GPT2Config, GPT2LMHeadModel, TrainerCallback

from hfgpt.cli import build_parser, main
from hfgpt.cli.options import dataclass_from_namespace
from hfgpt.errors import ConfigError
from hfgpt.training import TrainArguments, train
from hfgpt.training.arguments import resolve_mixed_precision

TINY = dict(
    preset="tiny",
    tokenizer="regex",
    max_length=32,
    show_progress=False,
    max_new_tokens=3,
    drop_rate=0.0,
)


def tiny_args(output_dir: Path, **fields) -> TrainArguments:
    return TrainArguments(output_dir=str(output_dir), **{**TINY, **fields})


def weights(output_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(output_dir / "model.safetensors"))


def losses(result) -> list[float]:
    return [r["loss"] for r in result.history if "loss" in r]


# --- mixed precision ----------------------------------------------------------------------------------------
def test_auto_precision_is_none_on_the_cpu_and_explicit_choices_stay():
    assert resolve_mixed_precision("auto", cpu=True) == ("no", "auto: training on the CPU")
    assert resolve_mixed_precision("bf16", cpu=True) == ("bf16", "as asked")
    assert TrainArguments().mixed_precision == "auto"


@pytest.mark.parametrize("bf16, want", [(True, "bf16"), (False, "fp16")])
def test_auto_precision_on_a_cuda_gpu(monkeypatch, bf16, want):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "NVIDIA Test GPU")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    precision, why = resolve_mixed_precision("auto", cpu=False)
    assert precision == want and "NVIDIA Test GPU" in why
    assert resolve_mixed_precision("auto", cpu=True)[0] == "no"  # --cpu on a GPU machine


def test_fp16_without_a_gpu_is_refused_before_any_work(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--output-dir", str(out), "--mixed-precision", "fp16", "missing-corpus.txt"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--mixed-precision fp16 needs a CUDA GPU" in err
    assert not out.exists() and not Path(str(out) + ".partial").exists()


# --- gradient accumulation ----------------------------------------------------------------------------------
def test_accumulation_gives_the_large_batch_losses_and_weights(tmp_path):
    """Batch 4 for 3 steps against batch 2 accumulated twice: the same windows in the same order make each
    step, so the logged losses and the final weights agree to float rounding."""
    common = dict(max_steps=3, eval_every=1, learning_rate=1e-2, warmup_steps=0)
    large = train(tiny_args(tmp_path / "large", batch_size=4, **common))
    accumulated = train(tiny_args(tmp_path / "acc", batch_size=2, gradient_accumulation_steps=2, **common))
    assert len(losses(large)) == 3
    assert losses(accumulated) == pytest.approx(losses(large), rel=1e-5)
    assert [r["tokens_seen"] for r in accumulated.history] == [r["tokens_seen"] for r in large.history]
    a, b = weights(tmp_path / "large"), weights(tmp_path / "acc")
    for name in a:
        # AdamW divides each gradient by its own running size: rounding differences of 1e-7 in tiny
        # gradients show as up to ~2e-6 in weights that moved 3 x 1e-2
        torch.testing.assert_close(b[name], a[name], rtol=1e-4, atol=1e-5, msg=name)
    # and the weights did move: the comparison is not between two untrained models
    fresh = train(tiny_args(tmp_path / "other", batch_size=4, **{**common, "max_steps": 1}))
    assert losses(fresh)[0] == pytest.approx(losses(large)[0], rel=1e-6)
    assert not torch.equal(weights(tmp_path / "other")["transformer.wte.weight"], a["transformer.wte.weight"])


def test_steps_per_epoch_count_optimizer_steps():
    from types import SimpleNamespace

    from hfgpt.training.pretraining import schedule_evaluation

    args = TrainArguments(batch_size=2, gradient_accumulation_steps=4, epochs=3.0)
    targs = SimpleNamespace()
    data = SimpleNamespace(train_set=range(100))  # 50 micro-batches: 13 optimizer steps an epoch
    assert schedule_evaluation(args, targs, data, processes=1) == 39


# --- schedule -----------------------------------------------------------------------------------------------
class Rates(TrainerCallback):
    """The learning rate of every logged step, as Trainer logs it (the rate that step trained with)."""

    def __init__(self):
        self.rates = {}

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "learning_rate" in logs:
            self.rates[state.global_step] = logs["learning_rate"]


def test_warmup_ratio_then_cosine_to_min_lr(tmp_path):
    """10 steps, warm-up 20% (2 steps) from 0 to 1e-3, then cosine down to 1e-4: the rate of each step against
    the schedule written out."""
    rates = Rates()
    args = tiny_args(tmp_path / "run", max_steps=10, eval_every=1, learning_rate=1e-3, warmup_ratio=0.2,
                     min_lr=1e-4)  # fmt: skip
    assert args.lr_scheduler == "cosine_with_min_lr"  # --min-lr turns the default cosine into it
    train(args, callbacks=[rates])

    def expected(step: int) -> float:  # the rate step `step` (1-based) trains with
        done = step - 1
        if done < 2:
            return 1e-3 * done / 2
        progress = (done - 2) / (10 - 2)
        return 1e-4 + (1e-3 - 1e-4) * 0.5 * (1 + math.cos(math.pi * progress))

    assert sorted(rates.rates) == list(range(1, 11))
    assert [rates.rates[step] for step in range(1, 11)] == pytest.approx(
        [expected(step) for step in range(1, 11)], rel=1e-6, abs=1e-12
    )


def test_warmup_ratio_replaces_warmup_steps():
    from hfgpt.training.pretraining import pretraining_arguments

    args = TrainArguments(warmup_ratio=0.05, warmup_steps=7)
    assert pretraining_arguments(args, Path("/nonexistent")).get_warmup_steps(1000) == 50
    assert pretraining_arguments(TrainArguments(warmup_steps=7), Path("/x")).get_warmup_steps(1000) == 7


@pytest.mark.parametrize(
    "fields, message",
    [
        (
            dict(min_lr=1e-4, lr_scheduler="linear"),
            "--min-lr is the floor of a cosine decay; --lr-scheduler linear",
        ),
        (dict(min_lr=1e-4, lr_scheduler="constant"), "--lr-scheduler constant has none"),
        (
            dict(min_lr=1e-3, learning_rate=1e-3),
            "--min-lr 0.001 must be below the peak --learning-rate 0.001",
        ),
        (dict(min_lr=-1.0), "--min-lr must be positive"),
        (dict(warmup_ratio=1.0), "--warmup-ratio must be in \\[0, 1\\)"),
        (dict(gradient_accumulation_steps=0), "--gradient-accumulation-steps must be positive"),
        (dict(report_to="mlflow"), "--report-to must be one of none, tensorboard, wandb"),
        (dict(mixed_precision="fp8"), "--mixed-precision must be one of auto, no, bf16, fp16"),
        (dict(dataloader_workers=-1), "--dataloader-workers must be 0 or more"),
    ],
)
def test_bad_schedule_and_run_options_are_one_line_errors(fields, message):
    with pytest.raises(ConfigError, match=message):
        TrainArguments(**fields)


def test_min_lr_reaches_the_cosine_with_min_lr_schedule():
    args = TrainArguments(lr_scheduler="cosine_with_min_lr", min_lr=1e-5)
    assert args.lr_scheduler_kwargs() == {"min_lr": 1e-5}
    assert TrainArguments(lr_scheduler="cosine_with_min_lr").lr_scheduler_kwargs() == {"min_lr_rate": 0.1}


# --- reporting ----------------------------------------------------------------------------------------------
def test_tensorboard_event_files_hold_the_logged_losses(tmp_path):
    pytest.importorskip(
        "tensorboard", reason="tensorboard is not installed (pip install 'hfgpt[tensorboard]')"
    )
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = train(tiny_args(tmp_path / "run", max_steps=6, eval_every=2, report_to="tensorboard"))
    logdir = tmp_path / "run" / "tensorboard"
    assert list(logdir.glob("events.out.tfevents.*")), "no event file in the published model's tensorboard/"
    events = EventAccumulator(str(logdir))
    events.Reload()
    tags = events.Tags()["scalars"]
    assert {"train/loss", "train/learning_rate", "train/tokens_per_second", "eval/loss"} <= set(tags)
    logged = {e.step: e.value for e in events.Scalars("train/loss")}
    want = {r["step"]: r["loss"] for r in result.history if "loss" in r}
    assert logged.keys() == want.keys() and list(logged.values()) == pytest.approx(list(want.values()))


def test_a_reporter_that_is_not_installed_is_refused_before_any_work(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a)
    )
    with pytest.raises(ConfigError, match=r"--report-to wandb needs wandb: pip install 'wandb'"):
        train(tiny_args(tmp_path / "run", report_to="wandb", corpus=["missing.txt"]))
    assert not (tmp_path / "run.partial").exists()


# --- --init-from --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory):
    """A small GPT-2 checkpoint with GPT-2's vocabulary, saved as GPT2LMHeadModel saves it."""
    torch.manual_seed(0)
    config = GPT2Config(n_embd=32, n_layer=2, n_head=4, n_positions=64)
    path = tmp_path_factory.mktemp("gpt2") / "model"
    GPT2LMHeadModel(config).save_pretrained(path)
    return path


def test_init_from_a_gpt2_checkpoint_starts_from_its_weights(tmp_path, gpt2_dir):
    """One step at warm-up's learning rate 0 leaves the weights as loaded: the published hfgpt model gives the
    GPT-2 checkpoint's logits (GPT2LMHeadModel's own forward is the reference)."""
    out = tmp_path / "run"
    fields = {
        **TINY,
        "preset": "small-cpu",
        "tokenizer": "gpt2-bpe",
        "max_length": None,
    }  # shape: the checkpoint's
    args = TrainArguments(output_dir=str(out), init_from=str(gpt2_dir), max_steps=1, **fields)
    train(args)
    ours = AutoModelForCausalLM.from_pretrained(out).eval()
    theirs = GPT2LMHeadModel.from_pretrained(gpt2_dir).eval()
    assert type(ours).__name__ == "HFGPTForCausalLM" and ours.config.emb_dim == 32
    ids = torch.randint(0, 50257, (2, 64), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(ours(ids).logits, theirs(ids).logits, rtol=1e-4, atol=1e-4)
    assert type(AutoTokenizer.from_pretrained(out)).__name__ == "GPT2BPETokenizer"


def test_init_from_a_gpt2_checkpoint_with_another_tokenizer_is_refused(tmp_path, gpt2_dir, capsys):
    code = main(["train", "--output-dir", str(tmp_path / "run"), "--init-from", str(gpt2_dir), "--tokenizer",
                 "regex"])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert (
        "is a GPT-2 checkpoint with the GPT2BPETokenizer tokenizer" in err and "--tokenizer gpt2-bpe" in err
    )
    assert not (tmp_path / "run.partial").exists()


def test_init_from_an_hfgpt_run_continues_it_with_its_tokenizer(tmp_path):
    """The second run reads another text, from which a regex tokenizer would learn other words: it trains with
    the first run's tokenizer instead, from the first run's weights (its first step, at learning rate 0, keeps
    them)."""
    first = tmp_path / "first"
    train(tiny_args(first, max_steps=4, eval_every=2))
    other = tmp_path / "other.txt"
    other.write_text("Completely different words about rivers, mountains and trains. " * 60)
    second = tmp_path / "second"
    train(tiny_args(second, corpus=[str(other)], init_from=str(first), max_steps=1, max_length=None))
    assert (
        AutoTokenizer.from_pretrained(second).get_vocab() == AutoTokenizer.from_pretrained(first).get_vocab()
    )
    a, b = weights(first), weights(second)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize(
    "fields, message",
    [
        (
            dict(tokenizer="gpt2-bpe"),
            r"trained with the RegexTokenizer tokenizer, whose ids --tokenizer gpt2-bpe "
            r"would not give: pass --tokenizer regex",
        ),
        (dict(emb_dim=64), r"--emb-dim 64 disagrees with the model in .* \(emb_dim 32\)"),
        (dict(position_encoding="rope"), r"--position-encoding rope disagrees with the model"),
        (
            dict(tie_word_embeddings=False),
            r"^--untie-embeddings disagrees with the model in .* \(tie_word_embeddings True\).*leave "
            r"--untie-embeddings out$",
        ),
        (dict(preset="gpt2"), r"--preset gpt2 is not the shape of the model in"),
        (
            dict(tokenizer_options={"strict": True}),
            r"brings its tokenizer: leave out --vocab-size and --tokenizer-options",
        ),
    ],
)
def test_init_from_options_that_would_change_the_model_are_refused(tmp_path, fields, message):
    first = tmp_path / "first"
    train(tiny_args(first, max_steps=1, eval_every=1))
    with pytest.raises(ConfigError, match=message):
        train(tiny_args(tmp_path / "second", init_from=str(first), corpus=["missing.txt"], **fields))


def test_init_from_a_directory_without_a_model_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a model directory"):
        train(tiny_args(tmp_path / "run", init_from=str(tmp_path)))


# --- --config -----------------------------------------------------------------------------------------------
def parse(*argv: str) -> TrainArguments:
    namespace = build_parser().parse_args(["train", *argv])
    return dataclass_from_namespace(TrainArguments, namespace)


def test_a_yaml_config_fills_options_and_the_command_line_wins(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("learning_rate: 6e-4\nbatch-size: 8\nlr_scheduler: linear\nepochs: 3\ncorpus: a.txt\n")
    args = parse("--config", str(config), "--epochs", "5")
    assert args.learning_rate == 6e-4  # YAML reads 6e-4 (no dot) as text: made a number
    assert (args.batch_size, args.lr_scheduler, args.epochs, args.corpus) == (8, "linear", 5.0, ["a.txt"])
    assert args.settings()["learning_rate"] == 6e-4 and "config" not in args.settings()


def test_a_json_config_with_flag_spellings_and_a_recipe(tmp_path):
    config = tmp_path / "run.json"
    config.write_text(json.dumps({"recipe": "book-ch05", "lr": 3e-4, "max-steps": 40}))
    args = parse("--config", str(config))
    assert (args.learning_rate, args.max_steps) == (3e-4, 40)  # the file wins over its recipe
    assert args.preset == "gpt2" and args.context_length == 256  # the rest is the recipe's


@pytest.mark.parametrize(
    "text, message",
    [
        ("learning_rate: 1e-3\nbatchsize: 4\nwarmup: 10\n", r"unknown options batchsize, warmup \(see"),
        ("epochs: -2\n", r"run.yaml: epochs must be positive, got -2.0"),
        ("lr_scheduler: step\n", r"run.yaml: lr_scheduler must be one of cosine, linear"),
        ("- epochs\n- 3\n", r"must hold option names and values, got a list"),
        ("epochs: [1\n", r"is not readable YAML or JSON"),
        ("config: other.yaml\n", r"names another config file"),
        ("lr: 1e-3\nlearning_rate: 2e-3\n", r"gives --learning-rate twice"),
    ],
)
def test_bad_config_files_are_one_line_errors(tmp_path, text, message):
    config = tmp_path / "run.yaml"
    config.write_text(text)
    with pytest.raises(ConfigError, match=message):
        TrainArguments(config=str(config))


def test_a_missing_config_file_is_refused_by_the_cli_in_one_line(tmp_path, capsys):
    assert main(["train", "--config", str(tmp_path / "none.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"hfgpt train: error: --config {tmp_path / 'none.yaml'}: no such file"


def test_the_config_options_reach_the_run(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(f"output_dir: {tmp_path / 'run'}\npreset: tiny\ntokenizer: regex\nmax_length: 32\n"
                      "max_steps: 2\neval_every: 1\nmax_new_tokens: 3\nshow_progress: false\n")  # fmt: skip
    result = train(TrainArguments(config=str(config)))
    assert result.output_dir == tmp_path / "run"
    assert [r["step"] for r in result.history if "loss" in r] == [1, 2]
