"""``hfgpt train``: pretrain a GPT on a corpus (default: the bundled "The Verdict")."""

from __future__ import annotations

import argparse

from hfgpt.cli.options import add_dataclass_arguments, dataclass_from_namespace
from hfgpt.training.arguments import TrainArguments

HELP = "pretrain a GPT on a text corpus (default: the bundled short story)"
DESCRIPTION = """\
Pretrain a GPT with transformers' Trainer. With no corpus it trains a small model on the bundled story
'The Verdict' (Edith Wharton, 20,479 characters) in a few minutes on a laptop CPU, holding out the last
10% for validation, and memorises it (training loss < 1). The output directory loads with
AutoModelForCausalLM/AutoTokenizer and holds loss_curve.png and training_log.json.

Several processes or GPUs go through accelerate (FSDP, several machines: docs/distributed.md):
  accelerate launch --config_file examples/accelerate/ddp.yaml -m hfgpt.cli train ...
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_dataclass_arguments(parser, TrainArguments)


def run(args: argparse.Namespace) -> int:
    from hfgpt.cli.paths import check_output_dir
    from hfgpt.training.pretraining import train

    options = dataclass_from_namespace(TrainArguments, args)
    check_output_dir(options.output_dir, "--output-dir", beside=True)  # the run is staged in <dir>.partial
    result = train(options)
    if result.sample is not None:  # main process only
        from hfgpt.training.progress import summary_lines

        print()
        for line in summary_lines(result):
            print(line)
        print(f"saved to {result.output_dir} (loss curve: {result.output_dir / 'loss_curve.png'})")
        print(f"\nsample: {result.sample}")
    return 0
