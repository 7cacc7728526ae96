"""Pretraining a GPT on a text corpus with transformers' Trainer (what `hfgpt train` runs).

corpus -> 90/10 split of every document -> tokenizer strategy -> `hfgpt.data.window` -> HFGPTForCausalLM
-> Trainer (accelerate places it on CPU/GPU; `accelerate launch` runs it on several processes)
-> an output directory that AutoModelForCausalLM/AutoTokenizer load, plus loss_curve.png.

Nothing is written over a finished model unless asked: the run works in `<output_dir>.partial/` (where
its checkpoints live, so `resume=True` continues an interrupted run), and only a complete result is
swapped into `<output_dir>` at the end.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

MODEL_FILES = ("config.json", "model.safetensors")


@dataclass
class TrainArguments:
    """Everything `hfgpt train` needs; the CLI maps its options one to one onto these fields.

    Args:
        corpus (`list[str]`): text files, folders, globs or a `datasets.save_to_disk` directory; empty = the
            bundled "The Verdict".
        tokenizer (`str`): tokenizer strategy (`gpt2-bpe`, `regex`, `bpe`, or a plugin's).
        vocab_size (`int`, *optional*): vocabulary size for strategies that learn one (`bpe`).
        position_encoding (`str`): positional-encoding strategy (`learned`, `sinusoidal`, `rope`, `none`, plugins).
        preset (`str`): model size preset (see `hfgpt.PRESETS`); `model_overrides` replace single fields.
        max_length / stride (`int`, *optional*): window length (default: the context length) and stride
            (default: max_length, i.e. no overlap).
    """

    corpus: list[str] = field(default_factory=list)
    output_dir: str = "runs/verdict"
    tokenizer: str = "gpt2-bpe"
    vocab_size: int | None = None
    position_encoding: str = "learned"
    preset: str = "small-cpu"
    model_overrides: dict[str, Any] = field(default_factory=dict)
    max_length: int | None = None
    stride: int | None = None
    epochs: float = 60.0
    batch_size: int = 2
    learning_rate: float = 2e-3
    weight_decay: float = 0.1
    val_fraction: float = 0.1
    seed: int = 123
    eval_every: int = 20
    save_every: int | None = None
    overwrite: bool = False
    resume: bool = False
    mixed_precision: str = "no"
    prompt: str = "Every effort moves you"
    max_new_tokens: int = 50
    show_progress: bool = True


@dataclass
class TrainResult:
    output_dir: Path
    history: list[dict]
    final_train_loss: float | None
    final_eval_loss: float | None
    sample: str | None


# --- corpus -----------------------------------------------------------------------------------------------
def load_corpus(corpus: list[str]) -> list[str]:
    """The documents of the corpus: the bundled default, files/folders/globs, or a saved datasets dir."""
    from hfgpt.corpus import default_corpus_path, read_text_file, read_texts

    if not corpus:
        texts = [read_text_file(default_corpus_path())]
    elif len(corpus) == 1 and os.path.isdir(corpus[0]) and _is_saved_dataset(corpus[0]):
        texts = _texts_from_saved_dataset(corpus[0])
    else:
        texts = read_texts(corpus)
    texts = [t for t in texts if t.strip()]
    if not texts:
        raise ValueError("the corpus is empty (no non-whitespace text): pass files that contain text")
    return texts


def _is_saved_dataset(path: str) -> bool:
    return any(
        (Path(path) / name).exists() for name in ("dataset_info.json", "dataset_dict.json", "state.json")
    )


def _texts_from_saved_dataset(path: str) -> list[str]:
    from datasets import DatasetDict, load_from_disk

    dataset = load_from_disk(path)
    if isinstance(dataset, DatasetDict):
        dataset = dataset["train"] if "train" in dataset else next(iter(dataset.values()))
    if "text" not in dataset.column_names:
        raise ValueError(
            f"the dataset in {path} has no 'text' column (columns: {', '.join(dataset.column_names)})"
        )
    return list(dataset["text"])


def split_documents(texts: list[str], val_fraction: float) -> tuple[list[str], list[str]]:
    """Cut every document at (1 - val_fraction) of its characters: the head trains, the tail validates."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be between 0 and 1, got {val_fraction}")
    cuts = [int(len(t) * (1 - val_fraction)) for t in texts]
    return [t[:c] for t, c in zip(texts, cuts)], [t[c:] for t, c in zip(texts, cuts)]


# --- output directory safety ------------------------------------------------------------------------------
def holds_model(path: Path) -> bool:
    return any((path / name).exists() for name in MODEL_FILES)


def staging_dir(output_dir: Path) -> Path:
    return output_dir.with_name(output_dir.name + ".partial")


def check_output_dir(output_dir: Path, overwrite: bool, resume: bool) -> None:
    if output_dir.exists() and not output_dir.is_dir():
        raise FileExistsError(f"{output_dir} exists and is not a directory: choose another --output-dir")
    if holds_model(output_dir) and not (overwrite or resume):
        raise FileExistsError(
            f"{output_dir} already holds a trained model; pass --overwrite to replace it (it is replaced only "
            "once the new run has finished) or choose another --output-dir"
        )
    if resume and not list(staging_dir(output_dir).glob("checkpoints/checkpoint-*")):
        raise FileNotFoundError(
            f"nothing to resume: no checkpoint of an interrupted run in {staging_dir(output_dir)}/checkpoints"
        )


def latest_complete_checkpoint(checkpoints: Path) -> str | None:
    """The newest checkpoint that was written completely (a crash mid-save leaves an incomplete one)."""
    found = sorted(checkpoints.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]), reverse=True)
    for path in found:
        if (path / "trainer_state.json").exists() and holds_model(path):
            return str(path)
    return None


def publish(staging: Path, output_dir: Path) -> None:
    """Swap the finished run into place; the previous model is removed only after the swap succeeded."""
    previous = output_dir.with_name(output_dir.name + ".previous")
    if previous.exists():
        shutil.rmtree(previous)
    if output_dir.exists():
        os.replace(output_dir, previous)
    os.replace(staging, output_dir)
    if previous.exists():
        shutil.rmtree(previous)


# --- the run ----------------------------------------------------------------------------------------------
def build_tokenizer(args: TrainArguments, train_texts: list[str]):
    from hfgpt.plugins import get_tokenizer_strategy

    options = {"vocab_size": args.vocab_size} if args.vocab_size else {}
    return get_tokenizer_strategy(args.tokenizer)(train_texts, **options)


def build_config(args: TrainArguments, tokenizer):
    from hfgpt.configuration_hfgpt import HFGPTConfig

    eos = tokenizer.eos_token_id
    return HFGPTConfig.from_preset(
        args.preset,
        **{
            "vocab_size": len(tokenizer),
            "position_encoding": args.position_encoding,
            "bos_token_id": tokenizer.bos_token_id if tokenizer.bos_token_id is not None else eos,
            "eos_token_id": eos,
            "pad_token_id": tokenizer.pad_token_id,
            **args.model_overrides,
        },
    )


def make_windows(texts: list[str], tokenizer, max_length: int, stride: int, what: str):
    from hfgpt.data import window

    try:
        return window(texts, tokenizer, max_length=max_length, stride=stride)
    except ValueError as exc:
        raise ValueError(f"{what} split: {exc}") from None


def train(args: TrainArguments, callbacks: list | None = None) -> TrainResult:
    """Run a pretraining job as described by `args`; see the module docstring."""
    import torch
    from transformers import Trainer, TrainerCallback, TrainingArguments, default_data_collator, set_seed

    from hfgpt.modeling_hfgpt import HFGPTForCausalLM
    from hfgpt.plotting import plot_loss_curve

    output_dir = Path(args.output_dir)
    check_output_dir(output_dir, args.overwrite, args.resume)
    if args.mixed_precision not in ("no", "fp16", "bf16"):
        raise ValueError(f"--mixed-precision must be no, fp16 or bf16, got {args.mixed_precision!r}")

    texts = load_corpus(args.corpus)
    train_texts, val_texts = split_documents(texts, args.val_fraction)
    tokenizer = build_tokenizer(args, train_texts)
    config = build_config(args, tokenizer)
    max_length = args.max_length or config.context_length
    if config.position_encoding == "learned" and max_length > config.context_length:
        raise ValueError(
            f"max_length={max_length} is longer than the model's context_length={config.context_length}; "
            "lower --max-length or raise --context-length"
        )
    stride = args.stride or max_length
    train_set = make_windows(train_texts, tokenizer, max_length, stride, "training")
    val_set = make_windows(val_texts, tokenizer, max_length, stride, "validation")

    set_seed(args.seed)
    model = HFGPTForCausalLM(config)
    staging = staging_dir(output_dir)
    history: list[dict] = []
    tokens_per_step: list[int] = []

    class LossHistory(TrainerCallback):
        """Records losses against tokens seen (steps x global batch x window length)."""

        def on_log(self, targs, state, control, logs=None, **kwargs):
            record = {"step": state.global_step, "tokens_seen": state.global_step * tokens_per_step[0]}
            record.update({k: v for k, v in (logs or {}).items() if k in ("loss", "eval_loss")})
            if len(record) > 2:
                history.append(record)

    use_cuda = torch.cuda.is_available()
    targs = TrainingArguments(
        output_dir=str(staging / "checkpoints"),
        num_train_epochs=args.epochs,
        per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        weight_decay=args.weight_decay,
        lr_scheduler_type="cosine",  # decays to 0 over the run: the last epochs polish the memorisation
        warmup_steps=10,
        eval_strategy="steps",
        eval_steps=args.eval_every,
        logging_steps=args.eval_every,
        logging_first_step=True,
        save_strategy="steps",
        save_steps=args.save_every or 10 * args.eval_every,
        save_total_limit=2,
        seed=args.seed,
        data_seed=args.seed,
        dataloader_drop_last=False,  # one flag for train and eval: a short validation split must keep its batch
        use_cpu=not use_cuda and not torch.backends.mps.is_available(),
        bf16=args.mixed_precision == "bf16",
        fp16=args.mixed_precision == "fp16",
        report_to="none",
        disable_tqdm=not args.show_progress,
    )
    trainer = Trainer(
        model=model,
        args=targs,
        train_dataset=train_set,
        eval_dataset=val_set,
        processing_class=tokenizer,
        data_collator=default_data_collator,  # windows are fixed-length: nothing to pad
        callbacks=[LossHistory(), *(callbacks or [])],
    )
    tokens_per_step.append(
        args.batch_size * trainer.accelerator.num_processes * targs.gradient_accumulation_steps * max_length
    )
    resume_from = latest_complete_checkpoint(staging / "checkpoints") if args.resume else None
    if args.resume and resume_from is None:
        raise FileNotFoundError(f"no complete checkpoint to resume from in {staging / 'checkpoints'}")
    if not args.resume and trainer.is_world_process_zero() and staging.exists():
        shutil.rmtree(staging)  # leftovers of an earlier interrupted run that is not being resumed
    trainer.accelerator.wait_for_everyone()

    trainer.train(resume_from_checkpoint=resume_from)
    evals = [r for r in history if "eval_loss" in r]
    if not evals or evals[-1]["step"] != trainer.state.global_step:
        trainer.evaluate()  # Trainer usually validates at the last step itself; LossHistory records either
        evals = [r for r in history if "eval_loss" in r]
    sample = None
    if trainer.is_world_process_zero():
        trainer.save_model(str(staging))
        tokenizer.save_pretrained(str(staging))
        model.generation_config.save_pretrained(str(staging))
        plot_loss_curve(
            history, staging / "loss_curve.png", title=f"hfgpt: {config.position_encoding} positions"
        )
        (staging / "training_log.json").write_text(
            json.dumps({"args": asdict(args), "history": history}, indent=1)
        )
        sample = generate_text(model, tokenizer, args.prompt, args.max_new_tokens)
        publish(staging, output_dir)
    trainer.accelerator.wait_for_everyone()

    train_losses = [r["loss"] for r in history if "loss" in r]
    return TrainResult(
        output_dir=output_dir,
        history=history,
        final_train_loss=train_losses[-1] if train_losses else None,
        final_eval_loss=evals[-1]["eval_loss"],
        sample=sample,
    )


# --- generation -------------------------------------------------------------------------------------------
def generate_text(
    model,
    tokenizer,
    prompt: str,
    max_new_tokens: int = 50,
    temperature: float = 0.0,
    top_k: int | None = None,
    seed: int | None = None,
) -> str:
    """Continue `prompt`; greedy when `temperature` is 0, else temperature (and top-k) sampling.

    The text returned starts with the prompt itself.
    """
    import torch

    if not prompt:
        raise ValueError("the prompt is empty: give the model some text to continue")
    ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"].to(model.device)
    limit = model.transformer.position_encoding.max_positions
    if limit is not None and ids.shape[1] + max_new_tokens > limit:
        raise ValueError(
            f"the prompt is {ids.shape[1]} tokens and {max_new_tokens} new tokens would make "
            f"{ids.shape[1] + max_new_tokens}, but this model ({model.config.position_encoding!r} positions) knows "
            f"only {limit}. Shorten the prompt or lower --max-new-tokens."
        )
    if seed is not None:
        torch.manual_seed(seed)
    sampling = temperature > 0
    options = dict(do_sample=sampling, max_new_tokens=max_new_tokens, pad_token_id=model.config.eos_token_id)
    if sampling:
        options.update(temperature=temperature, top_k=top_k or 0)
    model.eval()
    with torch.no_grad():
        output = model.generate(ids, attention_mask=torch.ones_like(ids), **options)
    text = tokenizer.decode(output[0], skip_special_tokens=False)
    if not text.startswith(
        prompt
    ):  # word-level tokenizers normalise spacing: keep the user's prompt verbatim
        text = prompt + " " + tokenizer.decode(output[0, ids.shape[1] :], skip_special_tokens=False)
    return text
