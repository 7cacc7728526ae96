"""``hfgpt attention``: draw a trained model's attention weights for a text as heatmaps."""

from __future__ import annotations

import argparse

HELP = "draw a model's attention weights for a text as heatmaps (tokens on both axes)"
DESCRIPTION = """\
Load a model directory with eager attention (the implementation that returns its weights), run it on TEXT
and draw one layer's attention weights as heatmaps: queries (the attending tokens) down, keys across, one
panel per head, or only --head N. Rows sum to 1; the upper triangle is empty (causal mask).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "model_dir", metavar="DIR", help="a directory written by `hfgpt train` or `hfgpt compare`"
    )
    parser.add_argument("text", metavar="TEXT", help="the text to attend over (a few dozen tokens read best)")
    parser.add_argument("--layer", type=int, default=-1, help="layer to draw, from 0 (-1: the last)")
    parser.add_argument("--head", type=int, help="draw only this head (default: every head, one panel each)")
    parser.add_argument("-o", "--output", default="attention.png", help="the PNG to write")


def run(args: argparse.Namespace) -> int:
    from hfgpt.compare import attention_weights, plot_attention
    from hfgpt.errors import ConfigError

    tokens, weights = attention_weights(args.model_dir, args.text, args.layer)
    heads = range(weights.shape[0])
    if args.head is not None:
        if args.head not in heads:
            raise ConfigError(f"--head must be between 0 and {weights.shape[0] - 1}, got {args.head}")
        heads = [args.head]
    layer = f"layer {args.layer}" if args.layer >= 0 else "last layer"
    panels = [(f"{layer}, head {head}", weights[head]) for head in heads]
    path = plot_attention(panels, tokens, args.output)
    print(f"attention of {len(tokens)} tokens, {len(panels)} head(s), written to {path}")
    return 0
