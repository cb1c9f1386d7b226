"""The RNN encoder-decoder with switchable attention (`model=rnn`, `model/attention=...`).

Shape letters as in the table of `seq2seq.models`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seq2seq.data.batch import length_mask
from seq2seq.models.dropout import Dropout
from seq2seq.models.embeddings import make_embeddings, tie_output_weights
from seq2seq.models.interface import (
    ModelOutput,
    Seq2SeqModel,
    StepOutput,
    check_source,
    check_source_lengths,
    check_target,
)
from seq2seq.models.rnn.attention import Attention, EncoderMemory
from seq2seq.models.rnn.cells import Hidden, make_rnn
from seq2seq.models.rnn.state import RNNDecoderState
from seq2seq.models.rnn.wiring import DecoderWiring, make_wiring


class RNNEncoder(nn.Module):
    """A (bidirectional) GRU/LSTM over packed sequences, so padding never enters the recurrence."""

    def __init__(
        self,
        *,
        cell: str,
        input_size: int,
        hidden_size: int,
        num_layers: int,
        bidirectional: bool,
        dropout: float,
    ) -> None:
        super().__init__()
        self.rnn = make_rnn(
            cell=cell,
            input_size=input_size,
            hidden_size=hidden_size,
            num_layers=num_layers,
            dropout=dropout,
            bidirectional=bidirectional,
        )
        self.num_directions = 2 if bidirectional else 1
        self.output_size = hidden_size * self.num_directions
        self.dropout = Dropout(dropout)

    def forward(self, embedded: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """Embedded source (B, S, E) -> outputs (B, S, C), zero on padding, and the final state
        (B, C): the top layer's last forward state and, if bidirectional, first backward one."""
        batch, length, _ = embedded.shape
        packed = pack_padded_sequence(
            embedded, lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        outputs, hidden = self.rnn(packed)
        outputs, _ = pad_packed_sequence(outputs, batch_first=True, total_length=length)
        last = hidden[0] if isinstance(hidden, tuple) else hidden  # (L * directions, B, H)
        final = last[-self.num_directions :].transpose(0, 1).reshape(batch, -1)  # (B, C)
        return self.dropout(outputs), final


class Bridge(nn.Module):
    """The decoder's initial state from the encoder's final one (JoeyNMT's bridge):

        s_0 = tanh(W_s [→h_S; ←h_1])   for every decoder layer (and as c_0 too for an LSTM)

    Bahdanau et al. use tanh(W_s ←h_1) alone; the forward state is added so a unidirectional
    encoder works as well.
    """

    def __init__(self, *, encoder_size: int, hidden_size: int, num_layers: int, cell: str) -> None:
        super().__init__()
        self.num_layers = num_layers
        self.num_states = 2 if cell == "lstm" else 1
        self.layer = nn.Linear(encoder_size, hidden_size * self.num_states)  # W_s

    def forward(self, final: Tensor) -> Hidden:
        states = torch.tanh(self.layer(final)).unsqueeze(0)  # (1, B, H * states)
        states = states.expand(self.num_layers, -1, -1)  # (L, B, H * states)
        if self.num_states == 1:
            return states.contiguous()
        hidden, cell = states.chunk(2, dim=-1)
        return hidden.contiguous(), cell.contiguous()


@dataclass(frozen=True)
class RNNEncoding:
    """What `encode` hands to `init_state`."""

    memory: EncoderMemory
    final: Tensor  # (B, C) final encoder state, input of the bridge


class RNNSeq2Seq(Seq2SeqModel):
    """Embeddings → packed RNN encoder → bridge → attentional RNN decoder → vocabulary projection.

    `attention` is a partial (configs/model/attention/*.yaml) completed here with the decoder's
    hidden size as query size and the encoder's output size as key size; `decoder` builds the
    wiring (`seq2seq.models.rnn.wiring.make_wiring`, `model.decoder.*`) around it.
    """

    def __init__(
        self,
        *,
        src_vocab_size: int,
        tgt_vocab_size: int,
        pad_id: int,
        attention: Callable[..., Attention],
        cell: str = "gru",
        embedding_size: int = 256,
        hidden_size: int = 256,
        num_encoder_layers: int = 1,
        num_decoder_layers: int = 1,
        bidirectional: bool = True,
        dropout: float = 0.2,
        decoder: Callable[..., DecoderWiring] = make_wiring,
        tie_output: bool = False,
        share_embeddings: bool = False,
    ) -> None:
        super().__init__()
        self.pad_id = pad_id
        self.src_embed, self.tgt_embed = make_embeddings(
            src_vocab_size=src_vocab_size,
            tgt_vocab_size=tgt_vocab_size,
            embedding_size=embedding_size,
            pad_id=pad_id,
            share=share_embeddings,
        )
        self.encoder = RNNEncoder(
            cell=cell,
            input_size=embedding_size,
            hidden_size=hidden_size,
            num_layers=num_encoder_layers,
            bidirectional=bidirectional,
            dropout=dropout,
        )
        self._add_decoder(
            attention, decoder, cell, embedding_size, hidden_size, num_decoder_layers, dropout
        )
        self._add_output(tgt_vocab_size, tie_output, dropout)

    def _add_decoder(  # noqa: PLR0913 - the constructor's own arguments, passed on
        self,
        attention: Callable[..., Attention],
        decoder: Callable[..., DecoderWiring],
        cell: str,
        embedding_size: int,
        hidden_size: int,
        num_layers: int,
        dropout: float,
    ) -> None:
        """The bridge from the encoder and the attentional decoder, built in this order."""
        self.bridge = Bridge(
            encoder_size=self.encoder.output_size,
            hidden_size=hidden_size,
            num_layers=num_layers,
            cell=cell,
        )
        self.decoder = decoder(
            attention=attention(query_size=hidden_size, key_size=self.encoder.output_size),
            cell=cell,
            embedding_size=embedding_size,
            hidden_size=hidden_size,
            num_layers=num_layers,
            dropout=dropout,
        )

    def _add_output(self, tgt_vocab_size: int, tie: bool, dropout: float) -> None:
        """The vocabulary projection (tied to the target embeddings with `tie_output`), and the
        dropout on embeddings."""
        self.output_layer = nn.Linear(self.decoder.output_size, tgt_vocab_size)
        if tie:
            tie_output_weights(self.output_layer, self.tgt_embed)
        self.embedding_dropout = Dropout(dropout)

    def encode(self, src: Tensor, src_lengths: Tensor) -> RNNEncoding:
        cpu_lengths = src_lengths.cpu()  # packing needs them on the CPU anyway
        check_source(src, cpu_lengths)
        check_source_lengths(src, cpu_lengths)
        values, final = self.encoder(self.embedding_dropout(self.src_embed(src)), cpu_lengths)
        memory = EncoderMemory(
            values=values,
            keys=self.decoder.attention.project_keys(values),  # once per batch, not per step
            mask=length_mask(src_lengths, src.size(1)),
            lengths=src_lengths,
        )
        return RNNEncoding(memory=memory, final=final)

    def init_state(self, encoded: RNNEncoding) -> RNNDecoderState:
        hidden = self.bridge(encoded.final)
        return RNNDecoderState(
            hidden=hidden,
            memory=encoded.memory,
            feed=self.decoder.initial_feed(hidden),
            attention=self.decoder.attention.initial_state(encoded.memory),
        )

    def step(
        self, tokens: Tensor, state: RNNDecoderState, return_attention: bool = False
    ) -> StepOutput:
        embedded = self.embedding_dropout(self.tgt_embed(tokens.unsqueeze(1)))  # (B, 1, E)
        features, state, attended = self.decoder.step(embedded, state)
        # float32 whatever the autocast: search sums these over many steps
        log_probs = self.output_layer(features.squeeze(1)).float().log_softmax(dim=-1)  # (B, V)
        if not return_attention:
            return StepOutput(log_probs=log_probs, state=state)
        weights = attended.dense_weights(state.memory.mask.size(1)).squeeze(1)  # (B, S)
        return StepOutput(log_probs=log_probs, state=state, attention=weights)

    def forward(
        self,
        src: Tensor,
        src_lengths: Tensor,
        tgt_in: Tensor,
        return_attention: bool = False,
        positions: Tensor | None = None,
    ) -> ModelOutput:
        check_target(src, tgt_in)
        state = self.init_state(self.encode(src, src_lengths))
        embedded = self.embedding_dropout(self.tgt_embed(tgt_in))  # (B, T, E)
        features, attended = self.decoder(embedded, state)
        if positions is not None:
            features = features[positions]  # (N, H)
        logits = self.output_layer(features)  # (B, T, V) or (N, V): one projection for all
        if not return_attention:
            return ModelOutput(logits=logits)
        weights = torch.cat([a.dense_weights(src.size(1)) for a in attended], dim=1)  # (B, T, S)
        has_centers = attended[0].center is not None
        centers = torch.cat([a.center for a in attended], dim=1) if has_centers else None
        return ModelOutput(logits=logits, attention=weights, attention_centers=centers)
