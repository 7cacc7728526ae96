"""``hfgpt export``: write a trained model as a stock transformers architecture (GPT-2 or GPT-NeoX)."""

from __future__ import annotations

import argparse

from hfgpt.cli.options import add_dataclass_arguments, dataclass_from_namespace
from hfgpt.export import ExportArguments

HELP = "write a model directory as stock GPT-2 / GPT-NeoX that loads without hfgpt (vLLM, llama.cpp, ...)"
DESCRIPTION = """\
Convert the hfgpt model in DIR (from `hfgpt train` or save_pretrained, with its tokenizer) into OUT, a
directory of a stock transformers architecture that loads with AutoModelForCausalLM/AutoTokenizer where
hfgpt is not installed, and that serving tools built for those architectures accept:

  position_encoding learned               -> GPT-2     (GPT2LMHeadModel)
  position_encoding rope (theta; linear,
    ntk or yarn scaling)                  -> GPT-NeoX  (GPTNeoXForCausalLM)

Other strategies have no stock equivalent and are refused. The tokenizer is written as tokenizer.json
(PreTrainedTokenizerFast) with the same ids. Before OUT is written the export is checked: its float32
logits must equal hfgpt's (to 1e-4 of the largest logit) and its tokenizer's ids hfgpt's. The export is
written next to OUT and renamed into place at the end, so a failure leaves nothing half written.
See docs/export.md.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_dataclass_arguments(parser, ExportArguments)


def run(args: argparse.Namespace) -> int:
    from hfgpt.cli.paths import check_output_dir
    from hfgpt.export import export_model

    options = dataclass_from_namespace(ExportArguments, args)
    check_output_dir(options.output_dir, "OUT", beside=True)  # written beside OUT, then renamed into place
    result = export_model(**vars(options))
    print(
        f"exported {options.model_dir} to {result.output_dir}: {result.model_class} "
        f"({result.architecture}), tokenizer.json from its {result.tokenizer_class}"
    )
    if result.max_logit_difference is not None:
        print(
            f"verified: largest float32 logit difference {result.max_logit_difference:.2g} over "
            f"{result.verified_tokens} tokens; tokenizer ids identical"
        )
    return 0
