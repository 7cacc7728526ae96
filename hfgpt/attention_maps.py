"""Attention maps: a trained model's attention weights for a text, drawn as heatmaps (tokens on both axes).

Used by `hfgpt attention` (one model, one layer, every head or one) and by `hfgpt compare` (the last layer of
every strategy's model, for the same text).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from hfgpt.errors import ConfigError
from hfgpt.plots import pyplot

IMAGE_FORMATS = ("png", "pdf", "svg", "jpg", "jpeg")


def check_image_path(path: str | Path, flag: str = "-o") -> Path:
    """The file a plot will be written to: it needs an image suffix matplotlib writes (it would otherwise add
    `.png` itself or refuse), and must not be empty or a folder."""
    if not str(path).strip():  # before Path(), which reads "" as "."
        raise ConfigError(f"{flag} is empty: name the image file to write, e.g. {flag} attention.png")
    path = Path(path)
    if path.is_dir():
        raise ConfigError(
            f"{flag} {path} is a folder: name the image file to write, e.g. {flag} {path / 'attention.png'}"
        )
    suffix = path.suffix.lower().lstrip(".")
    if suffix not in IMAGE_FORMATS:
        raise ConfigError(
            f"{flag} {path} needs an image suffix ({', '.join('.' + f for f in IMAGE_FORMATS)}), got "
            f"{'none' if not suffix else '.' + suffix}: e.g. {flag} {path.with_suffix('.png')}"
        )
    return path


def attention_weights(
    model_dir: str | Path, text: str, layer: int = -1, device: str = "cpu", head: int | None = None
):
    """`(tokens, weights, layer)`: the text's tokens, one layer's attention, shape (heads, seq, seq), and that
    layer's index counted from 0.

    The text, layer (and `head`, when one will be drawn) are checked against the config and tokenizer before the
    model is loaded; the model is
    loaded with eager attention, the only implementation that returns its weights. Any causal LM directory
    works (hfgpt's, GPT-2's...).
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from hfgpt.loading import check_model_dir, check_tokenizer_dir
    from hfgpt.position_encoding import max_positions

    directory = check_tokenizer_dir(check_model_dir(model_dir))
    config = AutoConfig.from_pretrained(directory)
    tokenizer = AutoTokenizer.from_pretrained(directory)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if not ids:
        raise ConfigError(f"the text {text!r:.60} has no tokens: pass some text")
    limit = max_positions(config)
    if limit is not None and len(ids) > limit:
        raise ConfigError(
            f"the text has {len(ids)} tokens, more than the model's {limit} positions: shorten it"
        )
    layers = config.num_hidden_layers
    if not -layers <= layer < layers:
        raise ConfigError(f"--layer must be between {-layers} and {layers - 1} (-1: the last), got {layer}")
    if head is not None and not 0 <= head < config.num_attention_heads:
        raise ConfigError(f"--head must be between 0 and {config.num_attention_heads - 1}, got {head}")
    hf_logging.disable_progress_bar()  # one small model: a loading bar is noise
    try:
        model = AutoModelForCausalLM.from_pretrained(directory, attn_implementation="eager").to(device)
    finally:
        hf_logging.enable_progress_bar()
    model.eval()
    with torch.no_grad():
        output = model(input_ids=torch.tensor([ids], device=device), output_attentions=True, use_cache=False)
    tokens = [tokenizer.decode([i]) for i in ids]
    return tokens, output.attentions[layer][0].float().cpu().numpy(), layer % layers


def _heatmap(ax, weights, tokens: list[str], title: str) -> None:
    labels = [repr(token)[1:-1] for token in tokens]  # newlines and spaces visible
    ax.imshow(weights, cmap="viridis", vmin=0.0, vmax=max(float(weights.max()), 1e-6))
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=6)
    ax.set_yticks(range(len(labels)), labels, fontsize=6)
    ax.set_xlabel("attended token (key)", fontsize=7)
    ax.set_ylabel("attending token (query)", fontsize=7)
    ax.set_title(title, fontsize=8)


def plot_attention(panels: list[tuple[str, Any]], tokens: list[str], path: str | Path) -> Path:
    """One heatmap per `(title, weights)` panel, tokens on both axes, up to four panels a row."""
    plt = pyplot()
    columns = min(4, len(panels))
    rows = math.ceil(len(panels) / columns)
    size = 2.2 + 0.16 * len(tokens)
    fig, axes = plt.subplots(rows, columns, figsize=(size * columns, size * rows), dpi=100, squeeze=False)
    for ax in axes.flat[len(panels) :]:
        ax.axis("off")
    for ax, (title, weights) in zip(axes.flat, panels):
        _heatmap(ax, weights, tokens, title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


__all__ = ["IMAGE_FORMATS", "attention_weights", "check_image_path", "plot_attention"]
