"""The hfgpt GPT: token embeddings, a pluggable positional encoding, causal multi-head attention blocks.

    input_ids -> wte -> position_encoding.embed -> dropout
              -> n_layers x [x + attn(ln_1(x)), x + mlp(ln_2(x))]      (GPT-2's pre-LayerNorm blocks)
              -> ln_f -> lm_head (tied to wte)

Rotary strategies act inside attention (`position_encoding.rotate`), score-bias strategies through a bias
built once per forward (`position_encoding.attention_bias`), content-dependent ones through a bias each layer
computes from its queries and keys (`position_encoding.content_bias`); see `hfgpt.position_encoding`. Each
layer may have its own strategy (`config.position_encoding_layers`, `config.nope_every`), attention may be
limited to a sliding window (`config.sliding_window`), and training may randomize positions
(`config.random_positions_max`).
"""

from collections.abc import Callable
from typing import Any, Unpack

import torch
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.cache_utils import Cache, DynamicCache
from transformers.masking_utils import create_causal_mask, create_sliding_window_causal_mask
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import (
    BaseModelOutputWithPast,
    CausalLMOutputWithPast,
    SequenceClassifierOutputWithPast,
)
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS, slice_logits_to_keep
from transformers.utils import TransformersKwargs
from transformers.utils.deprecation import deprecate_kwarg
from transformers.utils.generic import can_return_tuple, merge_with_config_defaults
from transformers.utils.output_capturing import capture_outputs

from hfgpt.configuration_hfgpt import HFGPTConfig
from hfgpt.errors import ModelInputError
from hfgpt.loading import strict_from_pretrained
from hfgpt.losses import chunked_linear_cross_entropy
from hfgpt.position_encoding import (
    PositionEncoding,
    check_schedule,
    layer_configs,
    random_positions,
    strategy_class,
)


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


def visible_keys(attention_mask: torch.Tensor | None, q_len: int, kv_len: int, device) -> torch.BoolTensor:
    """Where each query may attend, `(batch or 1, 1, q_len, kv_len)`, whatever form the mask came in: `None`
    (pure causal, the queries at the end of the keys), a bool mask (sdpa) or an additive float one (eager's
    masks hold the dtype's minimum where masked; a custom one may hold -inf)."""
    if attention_mask is None:
        return torch.ones(q_len, kv_len, dtype=torch.bool, device=device).tril(kv_len - q_len)[None, None]
    if attention_mask.dtype == torch.bool:
        return attention_mask
    return attention_mask > torch.finfo(attention_mask.dtype).min


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
        self.out_proj.writes_residual = True  # scaled at init, see `HFGPTPreTrainedModel._init_weights`
        self.attn_dropout = float(config.drop_rate)

    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    def forward(
        self,
        hidden_states: torch.Tensor,
        positions: Any,
        position_encoding: PositionEncoding,
        attention_mask: torch.Tensor | None = None,
        position_bias: torch.Tensor | None = None,
        cache: Cache | None = None,
        **kwargs,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        batch, seq, emb = hidden_states.shape
        qkv = self.qkv(hidden_states).view(batch, seq, 3, self.n_heads, self.head_dim)
        query, key, value = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (batch, heads, seq, head_dim)
        query, key = position_encoding.rotate(query, key, positions)  # `positions`: what `prepare` made
        if cache is not None:
            key, value = cache.update(key, value, self.layer_idx)
        if position_encoding.content_score_bias:  # a class constant: free (and no graph break) for the others
            visible = visible_keys(attention_mask, query.shape[-2], key.shape[-2], query.device)
            content = position_encoding.content_bias(query, key, positions, self.layer_idx, visible)
            if content is not None:
                content = content.to(query.dtype)
                position_bias = content if position_bias is None else position_bias + content

        # Looked up on every call, so `model.set_attn_implementation(...)` takes effect at run time.
        attention: Callable = ALL_ATTENTION_FUNCTIONS.get_interface(
            self.config._attn_implementation, eager_attention_forward
        )
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
        self.proj.writes_residual = True

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

    def forward(self, hidden_states: torch.Tensor, **attn_kwargs) -> torch.Tensor:
        attn_output, _ = self.attn(self.ln_1(hidden_states), **attn_kwargs)
        hidden_states = hidden_states + self.drop(attn_output)
        return hidden_states + self.drop(self.mlp(self.ln_2(hidden_states)))


class HFGPTPreTrainedModel(PreTrainedModel):
    config_class = HFGPTConfig
    config: HFGPTConfig
    base_model_prefix = "transformer"
    supports_gradient_checkpointing = True
    _no_split_modules = ["HFGPTBlock"]
    _supports_sdpa = True
    _supports_flash_attn = False  # flash kernels take no additive score bias (ALiBi, plugin biases)
    _supports_attention_backend = True
    _can_compile_fullgraph = True
    # `capture_outputs` collects these from forward hooks: every block's output (after the embeddings) is a
    # hidden state, every attention's second output its weights.
    _can_record_outputs = {"hidden_states": HFGPTBlock, "attentions": HFGPTAttention}

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """transformers' `from_pretrained`, made strict: a damaged directory or weights that do not fit the config
        are one clear error (see `hfgpt.loading.strict_from_pretrained`)."""
        return strict_from_pretrained(super().from_pretrained, pretrained_model_name_or_path, *args, **kwargs)

    @classmethod
    def register_for_auto_class(cls, auto_class="AutoModel"):
        """Nothing to do: hfgpt writes its own `auto_map` and code files (see `HFGPTConfig.save_pretrained`)
        rather than a copy of this module."""

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if self.config.initialization == "torch" and isinstance(module, (nn.Linear, nn.Embedding)):
            self._init_as_torch(module)
        elif isinstance(module, nn.Linear):
            # GPT-2: the projections into the residual stream are scaled by 1/sqrt(2 * n_layers). Done here, on
            # the layer itself: transformers skips the init of custom-code modules that hold no parameter of
            # their own (the attention and MLP modules), so a parent-level re-init would never run.
            if getattr(module, "writes_residual", False):
                std = std / (2 * self.config.n_layers) ** 0.5
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

    @staticmethod
    def _init_as_torch(module: nn.Linear | nn.Embedding) -> None:
        """The layer's own `reset_parameters`, through transformers' guarded init functions (which leave
        loaded weights alone): `nn.Linear` Kaiming-uniform with a=sqrt(5), that is U(-1/sqrt(fan_in),
        1/sqrt(fan_in)), its bias the same; `nn.Embedding` N(0, 1)."""
        if isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=1.0)
            return
        init.kaiming_uniform_(module.weight, a=5**0.5)
        if module.bias is not None:
            bound = 1 / module.in_features**0.5
            init.uniform_(module.bias, -bound, bound)


class HFGPTModel(HFGPTPreTrainedModel):
    """The GPT body: returns the final hidden states (`last_hidden_state`) and the KV cache.

    The forward has no data-dependent Python branch and reads no tensor value on the host, so it compiles as one
    graph (`torch.compile(model, fullgraph=True)`) and runs with a `StaticCache`. Token ids are checked where they
    enter instead: `HFGPTForCausalLM.generate` checks the prompt once, and on CPU an id outside the vocabulary
    is reported by the embedding lookup itself (see `embed_tokens`).

    Args:
        config (`HFGPTConfig`): model hyper-parameters; `config.position_encoding` names the strategy.
    """

    def __init__(self, config: HFGPTConfig):
        super().__init__(config)
        self.wte = nn.Embedding(config.vocab_size, config.emb_dim)
        # The model's own strategy first, then the others of a per-layer schedule, each with its layers.
        strategies = layer_configs(config)
        self.position_encoding: PositionEncoding = strategy_class(config)(config)
        if len(strategies) > 1:
            self.extra_position_encodings = nn.ModuleList(
                strategy_class(strategy_config)(strategy_config) for strategy_config, _ in strategies[1:]
            )
        # layer -> index into `position_encodings`; plain Python ints, so compiled graphs see constants
        self.layer_encoding = [0] * config.n_layers
        for index, (_, layers) in enumerate(strategies):
            for layer in layers:
                self.layer_encoding[layer] = index
        check_schedule(config)  # a schedule that changes nothing, random positions a strategy cannot encode
        self.drop = nn.Dropout(config.drop_rate)
        self.h = nn.ModuleList([HFGPTBlock(config, i) for i in range(config.n_layers)])
        self.ln_f = nn.LayerNorm(config.emb_dim, eps=config.layer_norm_epsilon)
        self.gradient_checkpointing = False
        self.post_init()

    @property
    def position_encodings(self) -> list[PositionEncoding]:
        """Every strategy the layers use: `position_encoding` first, then the others of a per-layer schedule."""
        extra = getattr(self, "extra_position_encodings", None)
        return [self.position_encoding, *extra] if extra is not None else [self.position_encoding]

    def get_input_embeddings(self) -> nn.Embedding:
        return self.wte

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.wte = value

    def embed_tokens(self, input_ids: torch.LongTensor) -> torch.Tensor:
        """`wte(input_ids)`, turning the lookup's own out-of-range failure into a clear error.

        Valid ids pay nothing (no reduction, no host read); on CPU an id outside the vocabulary makes the
        lookup raise `IndexError`, and only then are the ids inspected to name the culprit.
        """
        try:
            return self.wte(input_ids)
        except IndexError as error:
            raise out_of_vocabulary_error(input_ids, self.config.vocab_size) from error

    def check_length(self, cache: Cache | None, past_len: int | torch.Tensor, seq_len: int) -> None:
        """Refuse sequences longer than the strategy's positions, without reading a tensor on the host.

        A dynamic cache knows its length as a Python int. A static cache keeps it in a tensor (so compiled
        steps do not recompile); it is checked by its capacity instead, which bounds every position it holds.
        """
        limit, encoding = None, None
        for candidate in self.position_encodings:  # with a per-layer schedule, the most limited strategy
            own = candidate.max_positions
            if own is not None and (limit is None or own < limit):
                limit, encoding = own, candidate
        if limit is None:
            return
        capacity = cache.get_max_length() if cache is not None else -1  # -1: grows as needed
        # A sliding-window cache holds the last tokens only: its capacity bounds no position (its length is an int).
        if capacity > 0 and not any(getattr(cache, "is_sliding", ())):
            length, what = capacity, f"the static cache holds {capacity} tokens"
        else:
            length, what = past_len + seq_len, f"the sequence is {past_len + seq_len} tokens long"
        if length > limit:
            raise ModelInputError(
                f"{what}, but position_encoding={encoding.config.position_encoding!r} knows only {limit} positions "
                "(context_length). Truncate the input to the last context_length tokens (or generate fewer "
                "tokens), or train a model with a strategy that extrapolates (rope, alibi, none)."
            )

    def position_bias(
        self,
        position_ids: torch.LongTensor,
        cache: Cache | None,
        past_len: int | torch.Tensor,
        dtype: torch.dtype,
        encoding: PositionEncoding | None = None,
    ) -> torch.Tensor | None:
        """A strategy's score bias `(1 or batch, heads, q_len, kv_len)`, built once per forward, or `None`.

        Query positions are the tokens' own `position_ids`, so packed documents (positions restarting at each)
        and left padding are seen as the strategy would see them one by one. Key positions cover every key the
        cache returns: the new tokens' slots hold their `position_ids`, earlier slots continue the same
        numbering backwards from them (a sliding-window cache returns the keys from slot `kv_offset` on).

        Args:
            encoding (`PositionEncoding`, *optional*): the strategy (one of `position_encodings`); the model's
                own by default.
        """
        encoding = encoding if encoding is not None else self.position_encoding
        if not encoding.score_bias:
            return None  # no bias: no key positions to build
        seq_len, device = position_ids.shape[-1], position_ids.device
        kv_len, kv_offset = cache.get_mask_sizes(seq_len, 0) if cache is not None else (seq_len, 0)
        query_slots = torch.arange(seq_len, device=device) + (past_len - kv_offset)  # (q_len,) among the keys
        slot_zero = position_ids[:, -1:] - query_slots[-1]  # (batch, 1): the position of the first key
        key_positions = torch.arange(kv_len, device=device) + slot_zero  # (batch, kv_len)
        key_positions = key_positions.scatter(1, query_slots.expand_as(position_ids), position_ids)
        bias = encoding.attention_bias(position_ids, key_positions)
        return bias.to(dtype) if bias is not None else None

    @merge_with_config_defaults
    @capture_outputs
    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        use_cache: bool | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> BaseModelOutputWithPast:
        r"""
        Args:
            input_ids (`torch.LongTensor` of shape `(batch, seq)`): token ids; with a `cache`, only the new ones.
            cache (`Cache`, *optional*): keys and values of earlier tokens (`DynamicCache`, `StaticCache`...).
            attention_mask (`torch.Tensor`, *optional*): `(batch, past + seq)` with 0 for padding, or a ready
                4D mask `(batch, 1, seq, past + seq)` used as given.
            position_ids (`torch.LongTensor` of shape `(batch, seq)`, *optional*): each token's position;
                restarting positions mark packed documents, which then cannot see each other.
            inputs_embeds (`torch.FloatTensor` of shape `(batch, seq, emb_dim)`, *optional*): instead of ids.
            use_cache (`bool`, *optional*): return the cache (a new `DynamicCache` when none is given).
        """
        if (input_ids is None) == (inputs_embeds is None):
            raise ModelInputError("pass exactly one of input_ids or inputs_embeds")
        if inputs_embeds is None:
            if input_ids.shape[-1] == 0:
                raise ModelInputError(
                    "input_ids is empty: pass at least one token (encode a non-empty prompt)"
                )
            inputs_embeds = self.embed_tokens(input_ids)
        elif inputs_embeds.shape[1] == 0:
            raise ModelInputError("inputs_embeds is empty: pass at least one position")

        seq_len = inputs_embeds.shape[1]
        past_len = cache.get_seq_length() if cache is not None else 0
        self.check_length(cache, past_len, seq_len)
        if position_ids is None:
            position_ids = (torch.arange(seq_len, device=inputs_embeds.device) + past_len).unsqueeze(0)

        # Built before a default cache is created: with no cache, transformers reads packed documents from
        # restarting position_ids (an empty cache would turn that detection off). With a sliding window, keys
        # further back than the window are masked too (and a default cache keeps only the window).
        make_mask = create_sliding_window_causal_mask if self.config.sliding_window else create_causal_mask
        mask = make_mask(
            config=self.config,
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            cache=cache,
            position_ids=position_ids,
        )
        if self.training and self.config.random_positions_max:
            # The strategies see randomized positions; the mask above keeps reading documents from the real ones.
            maximum = self.config.random_positions_max
            if seq_len > maximum:
                raise ModelInputError(
                    f"a sequence of {seq_len} tokens cannot take distinct random positions from [0, {maximum}): "
                    f"raise random_positions_max to at least {seq_len}, or train on shorter windows"
                )
            position_ids = random_positions(position_ids, inputs_embeds.shape[0], maximum)

        encodings = self.position_encodings
        for encoding in encodings:  # absolute strategies add their positions once, in order
            inputs_embeds = encoding.embed(inputs_embeds, position_ids)
        hidden_states = self.drop(inputs_embeds)
        if use_cache and cache is None:
            cache = DynamicCache(config=self.config)
        # Once per forward, for every layer of each strategy: RoPE's tables, score biases.
        positions = [encoding.prepare(position_ids) for encoding in encodings]
        biases = [
            self.position_bias(position_ids, cache, past_len, hidden_states.dtype, encoding)
            for encoding in encodings
        ]

        for block, index in zip(self.h, self.layer_encoding):
            hidden_states = block(
                hidden_states,
                positions=positions[index],
                position_encoding=encodings[index],
                attention_mask=mask,
                position_bias=biases[index],
                cache=cache if not (self.gradient_checkpointing and self.training) else None,
                **kwargs,
            )
        return BaseModelOutputWithPast(
            last_hidden_state=self.ln_f(hidden_states), cache=cache if use_cache else None
        )


def out_of_vocabulary_error(input_ids: torch.LongTensor, vocab_size: int) -> ModelInputError:
    """The error for ids outside `[0, vocab_size)`, naming the first offending id."""
    bad = input_ids[(input_ids < 0) | (input_ids >= vocab_size)]
    culprit = int(bad[0]) if bad.numel() else "?"
    return ModelInputError(
        f"token id {culprit} is outside the model's vocabulary (vocab_size={vocab_size}). Use the tokenizer the "
        "model was trained with, or build the model with vocab_size=len(tokenizer)."
    )


class HFGPTForCausalLM(HFGPTPreTrainedModel, GenerationMixin):
    """The GPT with a language-modelling head. Generates with `generate()` and a KV cache (dynamic or static).

    Loss: `labels` aligned with `input_ids` (transformers' convention; shifted inside, -100 ignored), or
    `shift_labels`, targets already shifted by one (the book's `target`; see `hfgpt.data`). In training mode
    with targets, the loss is computed chunk by chunk without the full logits (`config.loss_chunk_size`,
    `hfgpt.losses`) and the output's `logits` is `None`; call `model.eval()` or set `loss_chunk_size=0` to get
    them. The value and gradients are those of the plain loss.

    Args:
        config (`HFGPTConfig`): model hyper-parameters.
    """

    _tied_weights_keys = {"lm_head.weight": "transformer.wte.weight"}

    def __init__(self, config: HFGPTConfig):
        super().__init__(config)
        self.transformer = HFGPTModel(config)
        self.lm_head = nn.Linear(config.emb_dim, config.vocab_size, bias=False)
        self.post_init()

    @can_return_tuple
    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        shift_labels: torch.LongTensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> CausalLMOutputWithPast:
        outputs: BaseModelOutputWithPast = self.transformer(
            input_ids,
            cache=cache,
            attention_mask=attention_mask,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            **kwargs,
        )
        loss, logits = None, None
        if self.uses_chunked_loss(labels, shift_labels, logits_to_keep):
            # The loss without the (tokens, vocab) logits: in training nobody looks at them, and a validation
            # that asked for no logits (an empty `logits_to_keep`) does not either.
            loss = chunked_linear_cross_entropy(
                outputs.last_hidden_state,
                self.lm_head.weight,  # tied: the gradient reaches transformer.wte.weight
                labels=labels,
                shift_labels=shift_labels,
                chunk_size=self.config.loss_chunk_size,
                num_items_in_batch=kwargs.get("num_items_in_batch"),
                ignore_index=kwargs.get("ignore_index", -100),
            )
        else:
            logits = self.lm_head(slice_logits_to_keep(outputs.last_hidden_state, logits_to_keep))
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
            cache=outputs.cache,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )

    def uses_chunked_loss(
        self,
        labels: torch.LongTensor | None,
        shift_labels: torch.LongTensor | None,
        logits_to_keep: int | torch.Tensor,
    ) -> bool:
        """Whether `forward` computes the chunked loss (and returns `logits=None`): with targets and a positive
        `config.loss_chunk_size`, in training mode when all positions' logits are asked for (the default), and in
        either mode when none are: `logits_to_keep` an empty index tensor (`torch.empty(0, dtype=torch.long)`),
        as a validation that only wants the loss passes (hfgpt's pretraining Trainer does)."""
        if (labels is None and shift_labels is None) or not self.config.loss_chunk_size:
            return False
        if isinstance(logits_to_keep, torch.Tensor):
            return logits_to_keep.numel() == 0
        return self.training and logits_to_keep == 0

    def generate(self, inputs: torch.Tensor | None = None, *args, **kwargs):
        """transformers' `generate`, after checking the prompt's ids once: the forward no longer reads ids on
        the host (a synchronisation every step on a GPU, where a bad id is an opaque device assert)."""
        ids = inputs if inputs is not None else kwargs.get("input_ids")
        if ids is not None and not ids.is_floating_point() and ids.numel():
            if int(ids.min()) < 0 or int(ids.max()) >= self.config.vocab_size:
                raise out_of_vocabulary_error(ids, self.config.vocab_size)
        return super().generate(inputs, *args, **kwargs)


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

    @can_return_tuple
    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> SequenceClassifierOutputWithPast:
        outputs: BaseModelOutputWithPast = self.transformer(
            input_ids,
            cache=cache,
            attention_mask=attention_mask,
            position_ids=position_ids,
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
            cache=outputs.cache,
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
