"""``hfgpt train``: pretrain a GPT on a corpus (default: the bundled "The Verdict")."""

from __future__ import annotations

import argparse

from hfgpt.training import TrainArguments

DEFAULTS = TrainArguments()


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "train",
        help="pretrain a GPT on a text corpus (default: the bundled short story)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description=(
            "Pretrain a GPT with transformers' Trainer. With no corpus it trains a small model on the bundled "
            "'The Verdict' (Edith Wharton, 20,479 characters) in a few minutes on a laptop CPU, 90/10 train/"
            "validation split, and memorises it (training loss < 1). The output directory loads with "
            "AutoModelForCausalLM/AutoTokenizer and holds loss_curve.png. Multi-process: "
            "`accelerate launch --num_processes N -m hfgpt.cli train ...`."
        ),
    )
    data = parser.add_argument_group("data")
    data.add_argument(
        "corpus", nargs="*", help="text files, folders, globs, or a datasets save_to_disk directory"
    )
    data.add_argument(
        "--tokenizer", default=DEFAULTS.tokenizer, help="tokenizer strategy (see `hfgpt plugins`)"
    )
    data.add_argument("--vocab-size", type=int, help="vocabulary size for tokenizers that learn one (bpe)")
    data.add_argument(
        "--max-length", type=int, help="tokens per training window (default: the context length)"
    )
    data.add_argument("--stride", type=int, help="distance between windows (default: max-length)")
    data.add_argument(
        "--val-fraction", type=float, default=DEFAULTS.val_fraction, help="validation share of each document"
    )

    model = parser.add_argument_group("model")
    model.add_argument(
        "--preset", default=DEFAULTS.preset, help="size preset: tiny, small-cpu, gpt2, gpt2-medium, ..."
    )
    model.add_argument(
        "--position-encoding",
        default=DEFAULTS.position_encoding,
        help="positional strategy (see `hfgpt plugins`)",
    )
    for name in ("context-length", "emb-dim", "n-heads", "n-layers"):
        model.add_argument(f"--{name}", type=int, help=f"override the preset's {name.replace('-', '_')}")
    model.add_argument("--drop-rate", type=float, help="override the preset's dropout rate")

    run = parser.add_argument_group("training")
    run.add_argument("--output-dir", default=DEFAULTS.output_dir, help="where the trained model is saved")
    run.add_argument("--epochs", type=float, default=DEFAULTS.epochs)
    run.add_argument(
        "--batch-size", type=int, default=DEFAULTS.batch_size, help="windows per step and device"
    )
    run.add_argument("--learning-rate", "--lr", type=float, default=DEFAULTS.learning_rate)
    run.add_argument("--weight-decay", type=float, default=DEFAULTS.weight_decay)
    run.add_argument("--seed", type=int, default=DEFAULTS.seed)
    run.add_argument(
        "--eval-every", type=int, default=DEFAULTS.eval_every, help="log and validate every N steps"
    )
    run.add_argument("--save-every", type=int, help="checkpoint every N steps (default: 10 x eval-every)")
    run.add_argument("--mixed-precision", choices=("no", "fp16", "bf16"), default=DEFAULTS.mixed_precision)
    run.add_argument("--overwrite", action="store_true", help="replace a model already in --output-dir")
    run.add_argument(
        "--resume", action="store_true", help="continue an interrupted run from its last checkpoint"
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bars")

    sample = parser.add_argument_group("sample")
    sample.add_argument(
        "--prompt", default=DEFAULTS.prompt, help="prompt for the sample printed after training"
    )
    sample.add_argument("--max-new-tokens", type=int, default=DEFAULTS.max_new_tokens)
    parser.set_defaults(func=run_train)


def run_train(args: argparse.Namespace) -> int:
    from hfgpt.training import train

    overrides = {
        key: value
        for key in ("context_length", "emb_dim", "n_heads", "n_layers", "drop_rate")
        if (value := getattr(args, key)) is not None
    }
    result = train(
        TrainArguments(
            corpus=args.corpus,
            output_dir=args.output_dir,
            tokenizer=args.tokenizer,
            vocab_size=args.vocab_size,
            position_encoding=args.position_encoding,
            preset=args.preset,
            model_overrides=overrides,
            max_length=args.max_length,
            stride=args.stride,
            epochs=args.epochs,
            batch_size=args.batch_size,
            learning_rate=args.learning_rate,
            weight_decay=args.weight_decay,
            val_fraction=args.val_fraction,
            seed=args.seed,
            eval_every=args.eval_every,
            save_every=args.save_every,
            overwrite=args.overwrite,
            resume=args.resume,
            mixed_precision=args.mixed_precision,
            prompt=args.prompt,
            max_new_tokens=args.max_new_tokens,
            show_progress=not args.no_progress,
        )
    )
    if result.sample is not None:  # main process only
        print(
            f"\nfinal training loss {result.final_train_loss:.3f}, validation loss {result.final_eval_loss:.3f}"
        )
        print(f"saved to {result.output_dir} (loss curve: {result.output_dir / 'loss_curve.png'})")
        print(f"\nsample: {result.sample}")
    return 0
