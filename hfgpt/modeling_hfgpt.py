"""The hfgpt GPT: token embeddings, a pluggable positional encoding, causal multi-head attention blocks.

    input_ids -> wte -> position_encoding.embed -> dropout
              -> n_layers x [x + attn(ln_1(x)), x + mlp(ln_2(x))]      (GPT-2's pre-LayerNorm blocks)
              -> ln_f -> lm_head (tied to wte)

Rotary strategies act inside attention (`position_encoding.rotate`), score-bias strategies through a bias
built once per forward (`position_encoding.attention_bias`); see `hfgpt.position_encoding`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import torch
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.cache_utils import Cache, DynamicCache
from transformers.masking_utils import create_causal_mask
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import (
    BaseModelOutputWithPast,
    CausalLMOutputWithPast,
    SequenceClassifierOutputWithPast,
)
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

from hfgpt.configuration_hfgpt import HFGPTConfig
from hfgpt.errors import ModelInputError, WeightsMismatchError
from hfgpt.plugins import get_position_encoding
from hfgpt.position_encoding import PositionEncoding

# transformers 5.24 renamed the KV cache from `past_key_values` to `cache` (generate passes `cache=` and
# reads `outputs.cache`); a model that misses the rename silently starts an empty cache at every step.
# hfgpt accepts both names and writes outputs under the one the installed version uses.
CACHE_FIELD = "cache" if "cache" in BaseModelOutputWithPast.__dataclass_fields__ else "past_key_values"
MASK_CACHE_ARG = "cache" if "cache" in inspect.signature(create_causal_mask).parameters else "past_key_values"


def _output_cache(outputs) -> Cache | None:
    return getattr(outputs, CACHE_FIELD)


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    position_bias: torch.Tensor | None = None,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention as in the textbook: scores, causal mask, softmax, dropout on the weights, weighted values."""
    scores = query @ key.transpose(-2, -1) * scaling  # (batch, heads, q_len, kv_len)
    if position_bias is not None:
        scores = scores + position_bias
    if attention_mask is None:  # pure causal: query i (at the end of the keys) sees keys up to its own slot
        q_len, kv_len = scores.shape[-2:]
        future = torch.ones(q_len, kv_len, dtype=torch.bool, device=scores.device).triu(kv_len - q_len + 1)
        scores = scores.masked_fill(future, float("-inf"))
    elif attention_mask.dtype == torch.bool:
        scores = scores.masked_fill(~attention_mask, float("-inf"))
    else:
        scores = scores + attention_mask
    weights = torch.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    weights = nn.functional.dropout(weights, p=dropout, training=module.training)
    output = (weights @ value).transpose(1, 2).contiguous()  # (batch, q_len, heads, head_dim)
    return output, weights


class HFGPTAttention(nn.Module):
    """Causal multi-head self-attention with one fused query/key/value projection.

    Args:
        config (`HFGPTConfig`): uses `emb_dim`, `n_heads`, `qkv_bias`, `drop_rate`.
        layer_idx (`int`): index of the block, used by the KV cache.
    """

    is_causal = True

    def __init__(self, config: HFGPTConfig, layer_idx: int):
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        self.n_heads = config.n_heads
        self.head_dim = config.emb_dim // config.n_heads
        self.scaling = self.head_dim**-0.5
        self.qkv = nn.Linear(config.emb_dim, 3 * config.emb_dim, bias=config.qkv_bias)
        self.out_proj = nn.Linear(config.emb_dim, config.emb_dim)
        self.attn_dropout = float(config.drop_rate)

    def forward(
        self,
        hidden_states: torch.Tensor,
        position_ids: torch.LongTensor,
        position_encoding: PositionEncoding,
        attention_mask: torch.Tensor | None = None,
        position_bias: torch.Tensor | None = None,
        past_key_values: Cache | None = None,
        **kwargs,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        batch, seq, emb = hidden_states.shape
        qkv = self.qkv(hidden_states).view(batch, seq, 3, self.n_heads, self.head_dim)
        query, key, value = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (batch, heads, seq, head_dim)
        query, key = position_encoding.rotate(query, key, position_ids)
        if past_key_values is not None:
            key, value = past_key_values.update(key, value, self.layer_idx)

        attention: Callable = eager_attention_forward
        if self.config._attn_implementation != "eager":
            attention = ALL_ATTENTION_FUNCTIONS[self.config._attn_implementation]
        output, weights = attention(
            self,
            query,
            key,
            value,
            attention_mask,
            dropout=self.attn_dropout if self.training else 0.0,
            scaling=self.scaling,
            position_bias=position_bias,
            **kwargs,
        )
        return self.out_proj(output.reshape(batch, seq, emb)), weights


class HFGPTMLP(nn.Module):
    """The feed-forward block: expand 4x, GELU (tanh approximation, as GPT-2), project back."""

    def __init__(self, config: HFGPTConfig):
        super().__init__()
        self.fc = nn.Linear(config.emb_dim, 4 * config.emb_dim)
        self.act = nn.GELU(approximate="tanh")
        self.proj = nn.Linear(4 * config.emb_dim, config.emb_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.act(self.fc(x)))


class HFGPTBlock(GradientCheckpointingLayer):
    """One transformer block: pre-LayerNorm attention and feed-forward, each with dropout and a residual."""

    def __init__(self, config: HFGPTConfig, layer_idx: int):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.emb_dim, eps=config.layer_norm_epsilon)
        self.attn = HFGPTAttention(config, layer_idx)
        self.ln_2 = nn.LayerNorm(config.emb_dim, eps=config.layer_norm_epsilon)
        self.mlp = HFGPTMLP(config)
        self.drop = nn.Dropout(config.drop_rate)

    def forward(self, hidden_states: torch.Tensor, **attn_kwargs) -> tuple[torch.Tensor, torch.Tensor | None]:
        attn_output, weights = self.attn(self.ln_1(hidden_states), **attn_kwargs)
        hidden_states = hidden_states + self.drop(attn_output)
        hidden_states = hidden_states + self.drop(self.mlp(self.ln_2(hidden_states)))
        return hidden_states, weights


class HFGPTPreTrainedModel(PreTrainedModel):
    config_class = HFGPTConfig
    config: HFGPTConfig
    base_model_prefix = "transformer"
    supports_gradient_checkpointing = True
    _no_split_modules = ["HFGPTBlock"]
    _supports_sdpa = True
    _supports_flash_attn = False
    _can_compile_fullgraph = False

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """transformers' `from_pretrained`, made strict: every weight the config expects must be in the
        checkpoint with its shape, and the checkpoint must hold no other weight (transformers would
        initialise the missing ones randomly and only log it). `ignore_mismatched_sizes=True` accepts
        other shapes, as in transformers; a head that differs from the saved architecture's (a classifier
        built on a causal LM) may be new."""
        from transformers.utils import logging as hf_logging

        return_info = kwargs.pop("output_loading_info", False)
        ignore_mismatched = kwargs.pop("ignore_mismatched_sizes", False)
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # its load report: the check below says what matters, in one line
        try:
            model, info = super().from_pretrained(
                pretrained_model_name_or_path,
                *args,
                ignore_mismatched_sizes=True,
                output_loading_info=True,
                **kwargs,
            )
        finally:
            hf_logging.set_verbosity(verbosity)
        check_loaded_weights(model, info, pretrained_model_name_or_path, ignore_mismatched)
        return (model, info) if return_info else model

    @classmethod
    def register_for_auto_class(cls, auto_class="AutoModel"):
        """Nothing to do: hfgpt writes its own `auto_map` and code files (see `HFGPTConfig.save_pretrained`)
        rather than a copy of this module."""

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=std)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, PositionEncoding):
            module.init_buffers()
        # GPT-2: scale the projections into the residual stream by 1/sqrt(2 * n_layers).
        if isinstance(module, (HFGPTAttention, HFGPTMLP)):
            proj = module.out_proj if isinstance(module, HFGPTAttention) else module.proj
            init.normal_(proj.weight, mean=0.0, std=std / (2 * self.config.n_layers) ** 0.5)


def check_loaded_weights(model: HFGPTPreTrainedModel, info: dict, source, ignore_mismatched: bool) -> None:
    """Raise `WeightsMismatchError` naming the tensors when a checkpoint does not fit the model built from
    its config; see `HFGPTPreTrainedModel.from_pretrained`."""
    saved = model.config.architectures or []
    new_head = saved and type(model).__name__ not in saved  # e.g. a classifier loaded from a causal LM
    body = f"{model.base_model_prefix}."

    def counts(key: str) -> bool:  # a new head's own weights may be missing, the old head's unexpected
        return not new_head or key.startswith(body) or model.base_model is model

    missing = sorted(k for k in info["missing_keys"] if counts(k))
    unexpected = sorted(k for k in info["unexpected_keys"] if counts(k))
    mismatched = [] if ignore_mismatched else sorted(info["mismatched_keys"])
    if not (missing or unexpected or mismatched):
        return

    def some(keys: list[str]) -> str:
        return ", ".join(keys[:4]) + (", ..." if len(keys) > 4 else "")

    problems = []
    if missing:
        problems.append(f"{len(missing)} weight(s) the config expects are missing ({some(missing)})")
    if unexpected:
        problems.append(f"{len(unexpected)} weight(s) the config has no place for ({some(unexpected)})")
    if mismatched:
        shapes = ", ".join(
            f"{k}: {tuple(a)} in the checkpoint, {tuple(b)} in the model" for k, a, b in mismatched[:3]
        )
        problems.append(f"{len(mismatched)} weight(s) of another shape ({shapes})")
    raise WeightsMismatchError(
        f"the weights in {source} do not fit the model its config describes: {'; '.join(problems)}. The "
        "checkpoint is damaged or config.json was edited: restore both from the run that wrote them "
        "(or pass ignore_mismatched_sizes=True to re-initialise weights of another shape)."
    )


class HFGPTModel(HFGPTPreTrainedModel):
    """The GPT body: returns the final hidden states (`last_hidden_state`) and the KV cache.

    Args:
        config (`HFGPTConfig`): model hyper-parameters; `config.position_encoding` names the strategy.
    """

    def __init__(self, config: HFGPTConfig):
        super().__init__(config)
        self.wte = nn.Embedding(config.vocab_size, config.emb_dim)
        self.position_encoding: PositionEncoding = get_position_encoding(config.position_encoding)(config)
        self.drop = nn.Dropout(config.drop_rate)
        self.h = nn.ModuleList([HFGPTBlock(config, i) for i in range(config.n_layers)])
        self.ln_f = nn.LayerNorm(config.emb_dim, eps=config.layer_norm_epsilon)
        self.gradient_checkpointing = False
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.wte

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.wte = value

    def _check_input_ids(self, input_ids: torch.LongTensor) -> None:
        if input_ids.numel() == 0:
            raise ModelInputError("input_ids is empty: pass at least one token (encode a non-empty prompt)")
        low, high = int(input_ids.min()), int(input_ids.max())
        if low < 0 or high >= self.config.vocab_size:
            raise ModelInputError(
                f"token id {high if high >= self.config.vocab_size else low} is outside the model's vocabulary "
                f"(vocab_size={self.config.vocab_size}). Use the tokenizer the model was trained with, or build the "
                "model with vocab_size=len(tokenizer)."
            )

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values: Cache | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPast:
        cache = kwargs.pop("cache", None)  # the name transformers >= 5.24 uses
        past_key_values = past_key_values if past_key_values is not None else cache
        if (input_ids is None) == (inputs_embeds is None):
            raise ModelInputError("pass exactly one of input_ids or inputs_embeds")
        if inputs_embeds is None:
            self._check_input_ids(input_ids)
            inputs_embeds = self.wte(input_ids)
        elif inputs_embeds.shape[1] == 0:
            raise ModelInputError("inputs_embeds is empty: pass at least one position")
        use_cache = use_cache if use_cache is not None else (self.config.use_cache and not self.training)
        output_attentions = (
            output_attentions if output_attentions is not None else self.config.output_attentions
        )
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        if use_cache and past_key_values is None:
            past_key_values = DynamicCache(config=self.config)

        seq_len = inputs_embeds.shape[1]
        past_len = past_key_values.get_seq_length() if past_key_values is not None else 0
        limit = self.position_encoding.max_positions
        if limit is not None and past_len + seq_len > limit:
            raise ModelInputError(
                f"the sequence is {past_len + seq_len} tokens long, but position_encoding="
                f"{self.config.position_encoding!r} knows only {limit} positions (context_length). Truncate the "
                "input to the last context_length tokens, or train a model with a strategy that extrapolates "
                "(rope, alibi, none)."
            )
        cache_position = torch.arange(past_len, past_len + seq_len, device=inputs_embeds.device)
        if position_ids is None:
            position_ids = cache_position.unsqueeze(0)

        hidden_states = self.drop(self.position_encoding.embed(inputs_embeds, position_ids))
        mask = create_causal_mask(
            config=self.config,
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            **{MASK_CACHE_ARG: past_key_values},
        )
        key_positions = torch.arange(past_len + seq_len, device=inputs_embeds.device)
        position_bias = self.position_encoding.attention_bias(cache_position, key_positions)
        if position_bias is not None:
            position_bias = position_bias.to(inputs_embeds.dtype)

        all_hidden_states = () if output_hidden_states else None
        all_attentions = () if output_attentions else None
        for block in self.h:
            if output_hidden_states:
                all_hidden_states += (hidden_states,)
            hidden_states, weights = block(
                hidden_states,
                position_ids=position_ids,
                position_encoding=self.position_encoding,
                attention_mask=mask,
                position_bias=position_bias,
                past_key_values=past_key_values,
                **kwargs,
            )
            if output_attentions:
                all_attentions += (weights,)
        hidden_states = self.ln_f(hidden_states)
        if output_hidden_states:
            all_hidden_states += (hidden_states,)
        return BaseModelOutputWithPast(
            last_hidden_state=hidden_states,
            **{CACHE_FIELD: past_key_values if use_cache else None},
            hidden_states=all_hidden_states,
            attentions=all_attentions,
        )


class HFGPTForCausalLM(HFGPTPreTrainedModel, GenerationMixin):
    """The GPT with a language-modelling head. Generates with `generate()` and a KV cache.

    Loss: `labels` aligned with `input_ids` (transformers' convention; shifted inside, -100 ignored), or
    `shift_labels`, targets already shifted by one (the book's `target`; see `hfgpt.data`).

    Args:
        config (`HFGPTConfig`): model hyper-parameters.
    """

    _tied_weights_keys = {"lm_head.weight": "transformer.wte.weight"}

    def __init__(self, config: HFGPTConfig):
        super().__init__(config)
        self.transformer = HFGPTModel(config)
        self.lm_head = nn.Linear(config.emb_dim, config.vocab_size, bias=False)
        self.post_init()

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values: Cache | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        shift_labels: torch.LongTensor | None = None,
        **kwargs,
    ) -> CausalLMOutputWithPast:
        outputs = self.transformer(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=past_key_values,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            **kwargs,
        )
        hidden_states = outputs.last_hidden_state
        keep = slice(-logits_to_keep, None) if isinstance(logits_to_keep, int) else logits_to_keep
        logits = self.lm_head(hidden_states[:, keep, :])
        loss = None
        if labels is not None or shift_labels is not None:
            # shift_labels (targets already shifted, as hfgpt.data makes them) take precedence over labels;
            # kwargs carries Trainer's num_items_in_batch, which keeps gradient accumulation exact.
            loss = self.loss_function(
                logits=logits,
                labels=labels if labels is not None else shift_labels,
                shift_labels=shift_labels.contiguous() if shift_labels is not None else None,
                vocab_size=self.config.vocab_size,
                **kwargs,
            )
        return CausalLMOutputWithPast(
            loss=loss,
            logits=logits,
            **{CACHE_FIELD: _output_cache(outputs)},
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )

    @classmethod
    def from_gpt2(cls, model_or_path, **kwargs) -> HFGPTForCausalLM:
        """Build an hfgpt model from a transformers `GPT2LMHeadModel` or a directory in its format."""
        from hfgpt.convert_gpt2 import gpt2_to_hfgpt

        return gpt2_to_hfgpt(model_or_path, **kwargs)


class HFGPTForSequenceClassification(HFGPTPreTrainedModel):
    """The GPT with a classification head on the hidden state of the last non-padding token.

    Args:
        config (`HFGPTConfig`): model hyper-parameters; `num_labels` sets the number of classes and
            `pad_token_id` tells padding apart (without it the last position is used).
    """

    def __init__(self, config: HFGPTConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.transformer = HFGPTModel(config)
        self.score = nn.Linear(config.emb_dim, config.num_labels, bias=False)
        self.post_init()

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values: Cache | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        **kwargs,
    ) -> SequenceClassifierOutputWithPast:
        outputs = self.transformer(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=past_key_values,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            **kwargs,
        )
        logits = self.score(outputs.last_hidden_state)  # (batch, seq, num_labels)
        batch = logits.shape[0]
        if input_ids is not None and self.config.pad_token_id is not None:
            # Index of the last non-pad token, whether padding is on the left or the right.
            not_pad = (input_ids != self.config.pad_token_id).int()
            positions = torch.arange(input_ids.shape[-1], device=logits.device)
            last = (positions * not_pad).argmax(-1)
        else:
            last = torch.full((batch,), logits.shape[1] - 1, device=logits.device)
        pooled = logits[torch.arange(batch, device=logits.device), last]
        loss = None
        if labels is not None:
            loss = self.loss_function(logits=logits, labels=labels, pooled_logits=pooled, config=self.config)
        return SequenceClassifierOutputWithPast(
            loss=loss,
            logits=pooled,
            **{CACHE_FIELD: _output_cache(outputs)},
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )


__all__ = [
    "HFGPTAttention",
    "HFGPTBlock",
    "HFGPTForCausalLM",
    "HFGPTForSequenceClassification",
    "HFGPTModel",
    "HFGPTPreTrainedModel",
]
