"""``hfgpt attention``: draw a trained model's attention weights for a text as heatmaps."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from hfgpt.cli.options import add_dataclass_arguments, dataclass_from_namespace
from hfgpt.options import MODEL_DIR_HELP, argument, option, validate_fields

HELP = "draw a model's attention weights for a text as heatmaps (tokens on both axes)"
DESCRIPTION = """\
Load a model directory with eager attention (the implementation that returns its weights), run it on TEXT
and draw one layer's attention weights as heatmaps: queries (the attending tokens) down, keys across, one
panel per head, or only --head N. Rows sum to 1; the upper triangle is empty (causal mask). Any causal LM
directory works (hfgpt's, GPT-2's). The model runs on cuda when a GPU is available, else on the CPU.
"""


def _non_negative(value) -> str | None:
    return None if value >= 0 else "must be 0 or more"


@dataclass
class AttentionArguments:
    """Everything `hfgpt attention` needs; each field is one command-line argument."""

    model_dir: str = argument("DIR", MODEL_DIR_HELP)
    text: str = argument("TEXT", "the text to attend over (a few dozen tokens read best)")
    layer: int = option(-1, group="drawing", help="layer to draw, from 0; negative counts from the last (-1)")
    head: int | None = option(
        None,
        group="drawing",
        check=_non_negative,
        help="draw only this head (default: every head, one panel each)",
    )
    output: str = option(
        "attention.png",
        group="drawing",
        flags=("-o", "--output"),
        help="the image to write: .png, .pdf, .svg or .jpg",
    )
    cpu: bool = option(False, group="drawing", help="run the model on the CPU even when a GPU is present")

    def __post_init__(self) -> None:
        from hfgpt.attention_maps import check_image_path
        from hfgpt.cli.paths import check_output_file

        validate_fields(self)
        check_output_file(check_image_path(self.output), "-o")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_dataclass_arguments(parser, AttentionArguments)


def run(args: argparse.Namespace) -> int:
    from hfgpt.attention_maps import attention_weights, plot_attention
    from hfgpt.evaluation import default_device

    options = dataclass_from_namespace(AttentionArguments, args)
    device = "cpu" if options.cpu else default_device()
    tokens, weights, layer = attention_weights(
        options.model_dir, options.text, options.layer, device, options.head
    )
    heads = range(weights.shape[0]) if options.head is None else [options.head]
    panels = [(f"layer {layer}, head {head}", weights[head]) for head in heads]
    path = plot_attention(panels, tokens, options.output)
    print(f"attention of {len(tokens)} tokens, layer {layer}, {len(panels)} head(s), written to {path}")
    return 0
