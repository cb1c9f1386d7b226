"""The Transformer encoder-decoder baseline (Vaswani et al., 2017, "Attention Is All You Need").

Shape letters as in the table of `seq2seq.models` (D is d_model, h the heads, d_k = D / h).

Why it is built this way:
- Attention runs through `F.scaled_dot_product_attention`, which picks fused kernels on CPU and
  CUDA. Those kernels never materialise the attention weights, so only the one layer whose
  cross-attention is asked for (plots, alignment) takes the explicit softmax path. In bf16 on a
  CPU it runs the math backend instead (`attend`): the fused CPU kernel's backward pass is slow
  in bf16.
- Masks are built once per batch: one boolean (B, 1, 1, S) source-padding mask that every layer
  shares, and `is_causal=True` for decoder self-attention, so no (T, T) tensor is ever built.
  Target padding needs no mask: it sits at the end, so causality hides it from real positions.
- Incremental decoding keeps per decoder layer the self-attention keys/values of the t target
  tokens seen so far and the cross-attention keys/values of the source, the latter projected once
  at `init_state`; step t then costs O(t) instead of re-running the whole prefix.
- The source keys/values stay one copy per sentence while beam search follows its K hypotheses
  (`TransformerState.group`): cross-attention reads them as K queries of that sentence, so
  reordering the beams copies only the prefix keys/values (seq2seq/models/sharing.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from seq2seq.data.batch import length_mask
from seq2seq.models.dropout import Dropout, dropout
from seq2seq.models.embeddings import embedding_pair, tie_output_weights
from seq2seq.models.interface import (
    DecoderState,
    ModelOutput,
    Seq2SeqModel,
    StepOutput,
    check_source,
    check_target,
)
from seq2seq.models.sharing import select_rows, shared_rows


def sinusoidal_table(max_positions: int, d_model: int) -> Tensor:
    """PE(pos, 2i) = sin(pos / 10000^(2i/D)), PE(pos, 2i+1) = cos(pos / 10000^(2i/D)) (§3.5)."""
    position = torch.arange(max_positions, dtype=torch.float32).unsqueeze(1)  # (P, 1)
    inv_freq = torch.exp(torch.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
    table = torch.zeros(max_positions, d_model)
    table[:, 0::2] = torch.sin(position * inv_freq)
    table[:, 1::2] = torch.cos(position * inv_freq)[:, : d_model // 2]
    return table


def _xavier_linear_(linear: nn.Linear, blocks: int = 1) -> None:
    """Xavier-uniform weights (JoeyNMT's reference init), zero bias.

    A fused projection holds `blocks` stacked (D, D) matrices; each gets the fan of one matrix,
    as if the projections were separate layers.
    """
    for block in linear.weight.chunk(blocks, dim=0):
        nn.init.xavier_uniform_(block)
    if linear.bias is not None:
        nn.init.zeros_(linear.bias)


def attend(query: Tensor, keys: Tensor, values: Tensor, **options: Any) -> Tensor:
    """`F.scaled_dot_product_attention(query, keys, values, **options)`; bf16 on a CPU through
    its math backend: PyTorch's fused CPU (flash) kernel took 2.1-2.7x its CPU time forward and
    backward in bf16 at Multi30k's shapes (60 sentences, 4 heads, ~22 positions, one thread;
    1.3x at 100 positions). In fp32 flash was as fast or faster, so PyTorch still chooses."""
    if query.device.type == "cpu" and query.dtype == torch.bfloat16:
        with sdpa_kernel(SDPBackend.MATH):
            return F.scaled_dot_product_attention(query, keys, values, **options)
    return F.scaled_dot_product_attention(query, keys, values, **options)


def _split_heads(x: Tensor, parts: int, num_heads: int) -> Tensor:
    """(B, T, parts * D) -> (parts, B, h, T, d_k)."""
    batch, length, _ = x.shape
    return x.view(batch, length, parts, num_heads, -1).permute(2, 0, 3, 1, 4)


def _merge_heads(x: Tensor) -> Tensor:
    """(B, h, T, d_k) -> (B, T, D)."""
    batch, _, length, _ = x.shape
    return x.transpose(1, 2).reshape(batch, length, -1)


@dataclass(frozen=True)
class LayerSpec:
    """Hyper-parameters shared by every encoder and decoder layer."""

    d_model: int
    num_heads: int
    ff_size: int
    dropout: float  # on each sub-layer's output, before the residual sum (the paper's P_drop)
    attention_dropout: float  # on the attention weights
    activation_dropout: float  # on the feed-forward's hidden ReLU activations
    pre_norm: bool


class TransformerEmbedding(nn.Module):
    """Token embedding scaled by sqrt(D), plus a sinusoidal or learned position code (§3.4-3.5)."""

    def __init__(
        self,
        vocab_size: int,
        d_model: int,
        pad_id: int,
        max_positions: int,
        learned_positions: bool,
        dropout: float,
    ) -> None:
        super().__init__()
        self.pad_id = pad_id
        self.token = nn.Embedding(vocab_size, d_model, padding_idx=pad_id)
        self.scale = math.sqrt(d_model)
        self.max_positions = max_positions
        self.learned_positions = learned_positions
        if learned_positions:
            self.position = nn.Parameter(torch.empty(max_positions, d_model))
        else:
            # Not persistent: it is a function of the shape, so checkpoints need not carry it.
            self.register_buffer("position", sinusoidal_table(max_positions, d_model), False)
        self.dropout = Dropout(dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.token.weight)
        with torch.no_grad():
            self.token.weight[self.pad_id].zero_()
        if self.learned_positions:
            nn.init.xavier_uniform_(self.position)

    def forward(self, tokens: Tensor, start: int = 0) -> Tensor:
        """Embed ids (B, T) that sit at positions start .. start + T - 1 -> (B, T, D)."""
        end = start + tokens.size(1)
        if end > self.max_positions:
            raise ValueError(
                f"a sequence reaches position {end}, beyond model.max_positions="
                f"{self.max_positions} (configs/model/transformer.yaml); raise it or cap lengths"
            )
        return self.dropout(self.token(tokens) * self.scale + self.position[start:end])


class MultiHeadSelfAttention(nn.Module):
    """MultiHead(X) = Concat(head_1, ..., head_h) W^O,
    head_i = softmax(X W_i^Q (X W_i^K)^T / sqrt(d_k)) X W_i^V (§3.2.2).

    Q, K and V come from one fused (D, 3D) projection. With `past` (2, B, h, t, d_k) the new keys
    and values are appended to the cached ones, which is how incremental decoding sees the prefix.
    """

    def __init__(self, d_model: int, num_heads: int, attention_dropout: float) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.attention_dropout = attention_dropout  # on the attention weights
        self.qkv_proj = nn.Linear(d_model, 3 * d_model)
        self.out_proj = nn.Linear(d_model, d_model)
        _xavier_linear_(self.qkv_proj, blocks=3)
        _xavier_linear_(self.out_proj)

    def forward(
        self,
        x: Tensor,
        mask: Tensor | None = None,
        is_causal: bool = False,
        past: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """x (B, T, D) -> (output (B, T, D), keys/values (2, B, h, t + T, d_k))."""
        qkv = _split_heads(self.qkv_proj(x), 3, self.num_heads)  # (3, B, h, T, d_k)
        query, kv = qkv[0], qkv[1:]
        if past is not None:
            kv = torch.cat([past, kv], dim=3)  # (2, B, h, t + T, d_k)
        context = attend(
            query,
            kv[0],
            kv[1],
            attn_mask=mask,
            dropout_p=self.attention_dropout if self.training else 0.0,
            is_causal=is_causal,
        )
        return self.out_proj(_merge_heads(context)), kv


class MultiHeadCrossAttention(nn.Module):
    """Decoder-to-encoder attention (§3.2.3): queries from the decoder, keys and values from the
    encoder output, projected once per sentence by `memory_kv`."""

    def __init__(self, d_model: int, num_heads: int, attention_dropout: float) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.attention_dropout = attention_dropout  # on the attention weights
        self.q_proj = nn.Linear(d_model, d_model)
        self.kv_proj = nn.Linear(d_model, 2 * d_model)
        self.out_proj = nn.Linear(d_model, d_model)
        _xavier_linear_(self.q_proj)
        _xavier_linear_(self.kv_proj, blocks=2)
        _xavier_linear_(self.out_proj)

    def memory_kv(self, memory: Tensor) -> Tensor:
        """Encoder output (B, S, D) -> keys and values (2, B, h, S, d_k)."""
        # Contiguous once here rather than strided in every decoding step.
        return _split_heads(self.kv_proj(memory), 2, self.num_heads).contiguous()

    def forward(
        self,
        x: Tensor,
        memory_kv: Tensor,
        mask: Tensor,
        need_weights: bool = False,
        group: int = 1,
    ) -> tuple[Tensor, Tensor | None]:
        """x (N, T, D) -> (output (N, T, D), per-head weights (N, h, T, S) if `need_weights`).

        `memory_kv` (2, M, h, S, d_k) and `mask` (M, 1, 1, S) hold N / M = `group` consecutive
        rows of x per memory row: queries do not interact, so those g·T are queries of one row.
        """
        batch, length, _ = x.shape
        grouped = x.reshape(batch // group, group * length, -1)  # (M, g·T, D)
        query = _split_heads(self.q_proj(grouped), 1, self.num_heads)[0]  # (M, h, g·T, d_k)
        dropout_p = self.attention_dropout if self.training else 0.0
        keys, values = memory_kv[0], memory_kv[1]
        if not need_weights:
            context = attend(query, keys, values, attn_mask=mask, dropout_p=dropout_p)
            return self.out_proj(_merge_heads(context)).view(batch, length, -1), None
        scores = query @ keys.transpose(-2, -1) / math.sqrt(query.size(-1))  # (M, h, g·T, S)
        # fp32 weights under autocast too: they are what plots and alignments read
        weights = scores.float().masked_fill(~mask, float("-inf")).softmax(dim=-1)
        context = dropout(weights, dropout_p) @ values  # (M, h, g·T, d_k)
        output = self.out_proj(_merge_heads(context)).view(batch, length, -1)
        heads, source = weights.size(1), weights.size(-1)
        weights = weights.view(-1, heads, group, length, source).transpose(1, 2)
        return output, weights.reshape(batch, heads, length, source)  # (N, h, T, S)


class PositionwiseFeedForward(nn.Sequential):
    """FFN(x) = max(0, x W_1 + b_1) W_2 + b_2 (§3.3)."""

    def __init__(self, d_model: int, ff_size: int, activation_dropout: float) -> None:
        super().__init__(
            nn.Linear(d_model, ff_size),
            nn.ReLU(),
            Dropout(activation_dropout),
            nn.Linear(ff_size, d_model),
        )
        _xavier_linear_(self[0])
        _xavier_linear_(self[3])


class Residual(nn.Module):
    """The residual connection around a sublayer F, with layer normalisation either
    pre-norm: x + Dropout(F(LN(x))) (Wang et al., 2019; trains without warm-up) or
    post-norm: LN(x + Dropout(F(x))) (Vaswani et al., 2017)."""

    def __init__(self, spec: LayerSpec) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(spec.d_model)
        self.dropout = Dropout(spec.dropout)
        self.pre_norm = spec.pre_norm

    def branch_input(self, x: Tensor) -> Tensor:
        return self.norm(x) if self.pre_norm else x

    def merge(self, x: Tensor, branch_output: Tensor) -> Tensor:
        x = x + self.dropout(branch_output)
        return x if self.pre_norm else self.norm(x)


class EncoderLayer(nn.Module):
    """Self-attention over the source, then the feed-forward network, each in a `Residual`."""

    def __init__(self, spec: LayerSpec) -> None:
        super().__init__()
        self.self_attn = MultiHeadSelfAttention(
            spec.d_model, spec.num_heads, spec.attention_dropout
        )
        self.self_attn_residual = Residual(spec)
        self.feed_forward = PositionwiseFeedForward(
            spec.d_model, spec.ff_size, spec.activation_dropout
        )
        self.feed_forward_residual = Residual(spec)

    def forward(self, x: Tensor, src_mask: Tensor) -> Tensor:
        branch, _ = self.self_attn(self.self_attn_residual.branch_input(x), mask=src_mask)
        x = self.self_attn_residual.merge(x, branch)
        branch = self.feed_forward(self.feed_forward_residual.branch_input(x))
        return self.feed_forward_residual.merge(x, branch)


class DecoderLayer(nn.Module):
    """Masked self-attention, cross-attention to the source, feed-forward; each in a `Residual`."""

    def __init__(self, spec: LayerSpec) -> None:
        super().__init__()
        self.self_attn = MultiHeadSelfAttention(
            spec.d_model, spec.num_heads, spec.attention_dropout
        )
        self.self_attn_residual = Residual(spec)
        self.cross_attn = MultiHeadCrossAttention(
            spec.d_model, spec.num_heads, spec.attention_dropout
        )
        self.cross_attn_residual = Residual(spec)
        self.feed_forward = PositionwiseFeedForward(
            spec.d_model, spec.ff_size, spec.activation_dropout
        )
        self.feed_forward_residual = Residual(spec)

    def forward(
        self,
        x: Tensor,
        past: Tensor | None,
        memory_kv: Tensor,
        src_mask: Tensor,
        need_weights: bool,
        group: int = 1,
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """x (N, T, D) -> (x, self-attention keys/values, cross-attention weights or None).

        Without `past` the T positions attend causally to each other (teacher forcing); with it
        (incremental decoding, T = 1) the new position attends to every cached one. `group`
        rows of x share each row of the source side (`MultiHeadCrossAttention`).
        """
        branch, kv = self.self_attn(
            self.self_attn_residual.branch_input(x), is_causal=past is None, past=past
        )
        x = self.self_attn_residual.merge(x, branch)
        branch, weights = self.cross_attn(
            self.cross_attn_residual.branch_input(x), memory_kv, src_mask, need_weights, group
        )
        x = self.cross_attn_residual.merge(x, branch)
        branch = self.feed_forward(self.feed_forward_residual.branch_input(x))
        return self.feed_forward_residual.merge(x, branch), kv, weights


class TransformerEncoder(nn.Module):
    def __init__(self, num_layers: int, spec: LayerSpec) -> None:
        super().__init__()
        self.layers = nn.ModuleList(EncoderLayer(spec) for _ in range(num_layers))
        # Pre-norm leaves the residual stream unnormalised; post-norm has just normalised it.
        self.final_norm = nn.LayerNorm(spec.d_model) if spec.pre_norm else nn.Identity()

    def forward(self, x: Tensor, src_mask: Tensor) -> Tensor:
        """Embedded source (B, S, D) -> memory (B, S, D)."""
        for layer in self.layers:
            x = layer(x, src_mask)
        return self.final_norm(x)


class TransformerDecoder(nn.Module):
    def __init__(self, num_layers: int, spec: LayerSpec) -> None:
        super().__init__()
        self.layers = nn.ModuleList(DecoderLayer(spec) for _ in range(num_layers))
        self.final_norm = nn.LayerNorm(spec.d_model) if spec.pre_norm else nn.Identity()

    def memory_kv(self, memory: Tensor) -> tuple[Tensor, ...]:
        """Each layer's cross-attention keys/values (2, B, h, S, d_k) of the memory (B, S, D)."""
        return tuple(layer.cross_attn.memory_kv(memory) for layer in self.layers)

    def forward(
        self,
        x: Tensor,
        past: Sequence[Tensor] | None,
        memory_kv: Sequence[Tensor],
        src_mask: Tensor,
        weights_layer: int | None,
        group: int = 1,
    ) -> tuple[Tensor, tuple[Tensor, ...], Tensor | None]:
        """Embedded target (N, T, D) -> (hidden (N, T, D), per-layer self-attention keys/values,
        per-head cross-attention weights (N, h, T, S) of layer `weights_layer`, or None); `group`
        consecutive rows share each row of `memory_kv` and `src_mask`."""
        present, weights = [], None
        for i, layer in enumerate(self.layers):
            layer_past = None if past is None else past[i]
            x, kv, layer_weights = layer(
                x, layer_past, memory_kv[i], src_mask, i == weights_layer, group
            )
            present.append(kv)
            weights = layer_weights if layer_weights is not None else weights
        return self.final_norm(x), tuple(present), weights


@dataclass(frozen=True)
class TransformerEncoded:
    """What `Transformer.encode` returns."""

    memory: Tensor  # (B, S, D) encoder output
    src_mask: Tensor  # (B, 1, 1, S) True on real source tokens; broadcasts over heads and queries


@dataclass(frozen=True)
class TransformerState(DecoderState):
    """Decoder state of N hypotheses after t target tokens, for incremental decoding.

    The source side is held once per sentence: hypothesis i reads row i // `group` of `cross_kv`
    and `src_mask` (M = N / group rows), so reordering beams within their sentences copies none
    of it (seq2seq/models/sharing.py).
    """

    self_kv: tuple[Tensor, ...]  # per decoder layer (2, N, h, t, d_k): keys/values of the prefix
    cross_kv: tuple[Tensor, ...]  # per decoder layer (2, M, h, S, d_k): fixed per sentence
    src_mask: Tensor  # (M, 1, 1, S)
    position: int  # t: the position of the token that the next `step` consumes
    group: int = 1  # hypotheses per row of the source side

    @property
    def num_hypotheses(self) -> int:
        return self.self_kv[0].size(1)

    def reorder(self, indices: Tensor) -> TransformerState:
        rows, group = shared_rows(indices // self.group)  # (M',) source rows kept
        return TransformerState(
            self_kv=tuple(kv.index_select(1, indices) for kv in self.self_kv),
            cross_kv=tuple(select_rows(kv, 1, rows) for kv in self.cross_kv),
            src_mask=select_rows(self.src_mask, 0, rows),
            position=self.position,
            group=group,
        )


class Transformer(Seq2SeqModel):
    """Encoder-decoder Transformer (Vaswani et al., 2017) behind the step-wise interface.

    Options: post-norm (the paper) or pre-norm (default; stable with a constant learning rate),
    sinusoidal or learned positions, one embedding matrix for source and target
    (`share_embeddings`, needs a joint vocabulary) and an output projection tied to the target
    embedding (`tie_output`, Press & Wolf, 2017).

    `dropout` is the paper's P_drop, on the embedding sums and on every sub-layer output. Dropout
    on the attention weights and on the feed-forward activations (tensor2tensor's additions,
    which JoeyNMT applies too) is off by default: on a CPU its random masks cost about a tenth of
    a training step, and the paper's models do without it.

    Cross-attention weights of decoder layer `attention_layer` (negative counts from the top),
    averaged over heads, come back from `forward(..., return_attention=True)` and
    `step(..., return_attention=True)`; `cross_attention_heads` gives them per head. They cost
    an explicit softmax, hence only when asked for.
    """

    def __init__(
        self,
        src_vocab_size: int,
        tgt_vocab_size: int,
        pad_id: int,
        d_model: int = 256,
        num_heads: int = 4,
        ff_size: int = 1024,
        num_encoder_layers: int = 3,
        num_decoder_layers: int = 3,
        dropout: float = 0.1,
        attention_dropout: float = 0.0,
        activation_dropout: float = 0.0,
        pre_norm: bool = True,
        learned_positions: bool = False,
        max_positions: int = 1024,
        share_embeddings: bool = False,
        tie_output: bool = True,
        attention_layer: int = -1,
    ) -> None:
        super().__init__()
        _check_hyper_parameters(d_model, num_heads, num_decoder_layers)
        self.pad_id = pad_id
        self.num_heads = num_heads
        self.attention_layer = attention_layer
        embedding = partial(
            TransformerEmbedding,
            d_model=d_model,
            pad_id=pad_id,
            max_positions=max_positions,
            learned_positions=learned_positions,
            dropout=dropout,
        )
        self.src_embed, self.tgt_embed = embedding_pair(
            embedding,
            src_vocab_size=src_vocab_size,
            tgt_vocab_size=tgt_vocab_size,
            share=share_embeddings,
        )
        spec = LayerSpec(
            d_model, num_heads, ff_size, dropout, attention_dropout, activation_dropout, pre_norm
        )
        self.encoder = TransformerEncoder(num_encoder_layers, spec)
        self.decoder = TransformerDecoder(num_decoder_layers, spec)
        self._add_output(d_model, tgt_vocab_size, tie_output)
        self._layer_index(attention_layer)  # fail at construction, not at the first plot

    def _add_output(self, d_model: int, tgt_vocab_size: int, tie: bool) -> None:
        """The vocabulary projection: the target embeddings with `tie_output`, else its own."""
        self.output_layer = nn.Linear(d_model, tgt_vocab_size, bias=False)
        if tie:
            tie_output_weights(self.output_layer, self.tgt_embed.token)
        else:
            _xavier_linear_(self.output_layer)

    def encode(self, src: Tensor, src_lengths: Tensor) -> TransformerEncoded:
        check_source(src, src_lengths)
        src_mask = length_mask(src_lengths, src.size(1))[:, None, None, :]  # (B, 1, 1, S)
        return TransformerEncoded(self.encoder(self.src_embed(src), src_mask), src_mask)

    def init_state(self, encoded: TransformerEncoded) -> TransformerState:
        cross_kv = self.decoder.memory_kv(encoded.memory)
        _, batch, heads, _, d_k = cross_kv[0].shape
        empty = cross_kv[0].new_empty(2, batch, heads, 0, d_k)  # no target token seen yet
        return TransformerState((empty,) * len(cross_kv), cross_kv, encoded.src_mask, 0)

    def step(
        self, tokens: Tensor, state: TransformerState, return_attention: bool = False
    ) -> StepOutput:
        if tokens.shape != (state.num_hypotheses,):
            raise ValueError(
                f"Transformer.step expects one token per hypothesis, shape "
                f"({state.num_hypotheses},), got {tuple(tokens.shape)}"
            )
        x = self.tgt_embed(tokens.unsqueeze(1), start=state.position)  # (B, 1, D)
        weights_layer = self._layer_index(self.attention_layer) if return_attention else None
        hidden, self_kv, weights = self.decoder(
            x, state.self_kv, state.cross_kv, state.src_mask, weights_layer, state.group
        )
        log_probs = F.log_softmax(self.output_layer(hidden.squeeze(1)).float(), dim=-1)  # (B, V)
        attention = None if weights is None else weights.mean(dim=1).squeeze(1)  # (B, S)
        next_state = replace(state, self_kv=self_kv, position=state.position + 1)
        return StepOutput(log_probs, next_state, attention)

    def forward(
        self,
        src: Tensor,
        src_lengths: Tensor,
        tgt_in: Tensor,
        return_attention: bool = False,
        positions: Tensor | None = None,
    ) -> ModelOutput:
        weights_layer = self._layer_index(self.attention_layer) if return_attention else None
        logits, weights = self._teacher_forced(src, src_lengths, tgt_in, weights_layer, positions)
        return ModelOutput(logits, None if weights is None else weights.mean(dim=1))  # (B, T, S)

    @property
    def attention_layers(self) -> int:
        """How many decoder layers `cross_attention_heads` reads (layers 0 .. n - 1)."""
        return len(self.decoder.layers)

    def cross_attention_heads(
        self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor, layer: int | None = None
    ) -> Tensor:
        """Per-head cross-attention weights (B, h, T, S) of decoder `layer` (default: the
        configured `attention_layer`) under teacher forcing, e.g. for per-head plots."""
        layer = self.attention_layer if layer is None else layer
        return self._teacher_forced(src, src_lengths, tgt_in, self._layer_index(layer))[1]

    def _teacher_forced(
        self,
        src: Tensor,
        src_lengths: Tensor,
        tgt_in: Tensor,
        weights_layer: int | None,
        positions: Tensor | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        check_target(src, tgt_in)
        encoded = self.encode(src, src_lengths)
        memory_kv = self.decoder.memory_kv(encoded.memory)
        hidden, _, weights = self.decoder(
            self.tgt_embed(tgt_in), None, memory_kv, encoded.src_mask, weights_layer
        )
        if positions is not None:
            hidden = hidden[positions]  # (N, D): the positions asked for only
        return self.output_layer(hidden), weights  # one projection of all (B, T, D) at once

    def _layer_index(self, layer: int) -> int:
        num_layers = len(self.decoder.layers)
        if not -num_layers <= layer < num_layers:
            raise ValueError(
                f"model.attention_layer must lie in [{-num_layers}, {num_layers - 1}] for "
                f"{num_layers} decoder layers, got {layer}"
            )
        return layer % num_layers


def _check_hyper_parameters(d_model: int, num_heads: int, num_decoder_layers: int) -> None:
    if d_model % num_heads:
        raise ValueError(
            f"model.d_model ({d_model}) must be divisible by model.num_heads ({num_heads})"
        )
    if num_decoder_layers < 1:
        raise ValueError(f"model.num_decoder_layers must be >= 1, got {num_decoder_layers}")
