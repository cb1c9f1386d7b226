"""Greedy and beam search, written once against the step-wise `Seq2SeqModel` interface.

Shape letters: B sentences, K beam size, N = B·K live hypotheses, S source length (padded),
V vocabulary, t the step (tokens generated so far, BOS excluded).

Length normalisation is GNMT's (Wu et al., 2016, eq. 14):
    score(Y) = log P(Y | X) / lp(Y),    lp(Y) = ((5 + |Y|) / 6) ** alpha,
where |Y| counts the generated tokens including EOS; alpha = 0 ranks by raw log-probability.

Every sentence may generate at most max_len = floor(max_len_a · src_len + max_len_b) tokens
before EOS; at that step only EOS is allowed, so a truncated hypothesis still pays for its EOS.

Finishing rule (fairseq's): each step keeps the 2K best candidates of a sentence; those ending in
EOS *among the K best* become finished hypotheses, and the K best of the rest stay alive. A
sentence stops once it has at least K finished hypotheses (or reaches its max_len) and is dropped
from the batch with `state.reorder`. Unlike fairseq, every EOS candidate of that last step is kept
(up to 2K - 1 in all), as under length normalisation a lower one may still rank higher.
A live hypothesis could in principle still overtake the finished ones, but the exact bound
(log-prob over lp(max_len)) keeps nearly every sentence alive to its max length, which costs far
more than the rare search error.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from tqdm import tqdm

from seq2seq.data.batch import Batch
from seq2seq.models.interface import DecoderState, Seq2SeqModel, StepOutput, check_source


@dataclass
class SearchSettings:
    """How hypotheses are searched for: the keys of the `search` config group."""

    beam_size: int
    alpha: float  # GNMT length-normalisation exponent, 0 = raw log-probability
    max_len_a: float  # max_len = floor(max_len_a · src_len + max_len_b)
    max_len_b: int


@dataclass(frozen=True)
class Hypothesis:
    """One finished translation of one sentence."""

    tokens: list[int]  # generated ids, without BOS and EOS
    score: float  # log P(Y | X) / lp(Y), what the n-best list is sorted by
    log_prob: float  # log P(Y | X), EOS included
    attention: Tensor | None = None  # (T, S_i): T = len(tokens) + 1 (the EOS row last), unpadded


def length_penalty(length: int, alpha: float) -> float:
    """GNMT's lp(Y) = ((5 + |Y|) / 6) ** alpha, with |Y| counting EOS."""
    return ((5.0 + length) / 6.0) ** alpha


def max_output_lengths(src_lengths: Tensor, max_len_a: float, max_len_b: int) -> Tensor:
    """(B,) on the CPU: floor(max_len_a · src_len + max_len_b) tokens allowed before EOS."""
    if max_len_a < 0 or max_len_b < 0:
        raise ValueError(
            f"search.max_len_a and search.max_len_b must be >= 0, got {max_len_a}, {max_len_b}"
        )
    return (max_len_a * src_lengths.detach().cpu().double() + max_len_b).floor().long()


def _check_args(beam_size: int, n_best: int, alpha: float) -> None:
    if beam_size < 1:
        raise ValueError(f"search.beam_size must be >= 1, got {beam_size}")
    if not 1 <= n_best <= beam_size:
        raise ValueError(f"n_best must be in [1, beam_size={beam_size}], got {n_best}")
    if alpha < 0:
        raise ValueError(f"search.alpha must be >= 0, got {alpha}")


def _start(model: Seq2SeqModel, src: Tensor, src_lengths: Tensor) -> DecoderState:
    check_source(src, src_lengths)  # before a model that does not check them fails obscurely
    return model.init_state(model.encode(src, src_lengths))


def _step_log_probs(out: StepOutput, at_limit: Tensor, eos_id: int) -> Tensor:
    """(N, V) float32 log-probabilities; rows `at_limit` (N,) (CPU bool) may only emit EOS.

    A forced EOS keeps the model's log-probability, floored to the lowest finite float so that a
    model ruling EOS out still ends every sentence with a (hopeless) hypothesis.
    """
    log_probs = out.log_probs.float()  # bf16 under autocast would blur the beam ranking
    if not at_limit.any():
        return log_probs
    eos_only = torch.full_like(log_probs, -math.inf)
    eos_only[:, eos_id] = log_probs[:, eos_id].clamp(min=torch.finfo(log_probs.dtype).min)
    return torch.where(at_limit.to(log_probs.device).unsqueeze(1), eos_only, log_probs)


def _append_attention(history: Tensor | None, out: StepOutput, wanted: bool) -> Tensor | None:
    """(N, t+1, S): the attention history with this step's row appended, if asked and given."""
    if not wanted or out.attention is None:
        return None
    step = out.attention.float().unsqueeze(1)  # (N, 1, S)
    return step if history is None else torch.cat([history, step], dim=1)


def _hypothesis(
    tokens: list[int], log_prob: float, alpha: float, attention: Tensor | None, src_len: int
) -> Hypothesis:
    return Hypothesis(
        tokens=tokens,
        score=log_prob / length_penalty(len(tokens) + 1, alpha),
        log_prob=log_prob,
        attention=None if attention is None else attention[:, :src_len].cpu(),
    )


# ---------------------------------------------------------------------------------- greedy


@dataclass
class _Rows:
    """The sentences still decoded greedily, one row each (B' rows, tensors indexed alike)."""

    sentences: Tensor  # (B',) CPU: row of each sentence in the input batch
    max_len: Tensor  # (B',) CPU
    scores: Tensor  # (B',) log-probability so far
    tokens: Tensor  # (B', t)
    attention: Tensor | None  # (B', t+1, S) once this step's row is appended

    def select(self, keep: Tensor) -> _Rows:
        """The rows `keep` (CPU LongTensor) in that order."""
        on_device = keep.to(self.tokens.device)
        return _Rows(
            self.sentences[keep],
            self.max_len[keep],
            self.scores[on_device],
            self.tokens[on_device],
            None if self.attention is None else self.attention[on_device],
        )


def _finish_rows(
    rows: _Rows, ended: Tensor, finished: list[list[Hypothesis]], alpha: float, src_lens: list[int]
) -> None:
    """Append the hypotheses of rows `ended` (CPU bool (B',)) to their sentence's list."""
    for i in ended.nonzero().flatten().tolist():
        sentence = int(rows.sentences[i])
        attention = None if rows.attention is None else rows.attention[i]
        finished[sentence].append(
            _hypothesis(
                rows.tokens[i].tolist(), float(rows.scores[i]), alpha, attention, src_lens[sentence]
            )
        )


@torch.inference_mode()
def greedy_search(
    model: Seq2SeqModel,
    src: Tensor,
    src_lengths: Tensor,
    settings: SearchSettings,
    *,
    bos_id: int,
    eos_id: int,
    return_attention: bool = False,
) -> list[list[Hypothesis]]:
    """The most probable token at every step; a 1-best list per sentence.

    `settings.beam_size` is not read; `alpha` only normalises the reported score, it cannot
    change a greedy choice.
    """
    alpha = settings.alpha
    _check_args(1, 1, alpha)
    if src.size(0) == 0:
        return []
    state = _start(model, src, src_lengths)
    batch_size, src_lens = src.size(0), src_lengths.tolist()
    rows = _Rows(
        sentences=torch.arange(batch_size),
        max_len=max_output_lengths(src_lengths, settings.max_len_a, settings.max_len_b),
        scores=src.new_zeros(batch_size, dtype=torch.float),
        tokens=src.new_empty(batch_size, 0),
        attention=None,
    )
    finished: list[list[Hypothesis]] = [[] for _ in range(batch_size)]
    prev = src.new_full((batch_size,), bos_id)
    for t in itertools.count():  # ends at max_len at the latest, where only EOS is allowed
        out = model.step(prev, state, return_attention=return_attention)
        step_scores, prev = _step_log_probs(out, rows.max_len == t, eos_id).max(dim=1)
        rows.scores = rows.scores + step_scores
        rows.attention = _append_attention(rows.attention, out, return_attention)
        ended = (prev == eos_id).cpu()
        _finish_rows(rows, ended, finished, alpha, src_lens)
        rows.tokens = torch.cat([rows.tokens, prev.unsqueeze(1)], dim=1)
        state = out.state
        if ended.any():
            keep = (~ended).nonzero().flatten()
            if keep.numel() == 0:
                break
            rows, prev = rows.select(keep), prev[keep.to(prev.device)]
            state = state.reorder(keep.to(prev.device))
    return finished


# ------------------------------------------------------------------------------------ beam


@dataclass
class _Beams:
    """The live hypotheses of the B' sentences still searched; K per sentence, row b·K + k.

    Before the first step each sentence has one hypothesis (BOS): its K copies would all score
    the same, so the first step runs the model on B rows instead of B·K.
    """

    sentences: Tensor  # (B',) CPU: row of each sentence in the input batch
    max_len: Tensor  # (B',) CPU
    num_finished: Tensor  # (B',) CPU
    scores: Tensor  # (B', K) log-probability so far; (B, 1) before the first step
    tokens: Tensor  # (N, t)
    attention: Tensor | None  # (N, t+1, S) once this step's row is appended


@dataclass
class _Candidates:
    """The 2K best one-token extensions of each sentence, best first."""

    scores: Tensor  # (B', 2K) log-probability with the new token
    rows: Tensor  # (B', 2K) row b·K + k of the parent hypothesis (b before the first step)
    tokens: Tensor  # (B', 2K) the new token


def _initial_beams(src: Tensor, max_len: Tensor) -> _Beams:
    batch_size = src.size(0)
    return _Beams(
        sentences=torch.arange(batch_size),
        max_len=max_len,
        num_finished=torch.zeros(batch_size, dtype=torch.long),
        scores=src.new_zeros((batch_size, 1), dtype=torch.float),  # one hypothesis: BOS
        tokens=src.new_empty(batch_size, 0),
        attention=None,
    )


def top_k_rows(x: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """`x.topk(k, dim=1)` of (N, V) rows for k much smaller than V, through column blocks.

    Block j of G blocks holds the columns j, j + G, j + 2G, ... Each of a row's k largest values
    lies in one of the k blocks with the largest maxima (a block holding one has a maximum at
    least as large, and at most k blocks can), so one vectorised max over the blocks, a top-k of
    the G maxima and one over those k blocks' columns find the values and columns of ranking all
    V. On a CPU, top-k over 8,000 columns costs ~1.5-3 ns an entry, the block maximum a tiny
    fraction of that, and beam search runs it on every hypothesis at every step.
    """
    rows, columns = x.shape
    groups = _block_count(columns, k)
    if groups is None:
        return x.topk(k, dim=1)
    per_block = columns // groups
    block_max = x.view(rows, per_block, groups).amax(dim=1)  # (N, G)
    blocks = block_max.topk(k, dim=1).indices  # (N, k)
    members = groups * torch.arange(per_block, device=x.device)
    candidates = (blocks.unsqueeze(2) + members).view(rows, -1)  # (N, k · V / G) columns
    values, best = x.gather(1, candidates).topk(k, dim=1)
    return values, candidates.gather(1, best)


@functools.cache  # one answer per (vocabulary, beam) pair, asked at every search step
def _block_count(columns: int, k: int) -> int | None:
    """G blocks of at least 8 columns each (the smallest such divisor of V), or None where that
    leaves too few blocks to pay (V = 8,000: 1,000 blocks of 8)."""
    per_block = next((d for d in range(8, math.isqrt(columns) + 1) if columns % d == 0), None)
    if per_block is None or columns // per_block < 8 * k:
        return None
    return columns // per_block


def select_top_k(scores: Tensor, log_probs: Tensor, beam_size: int) -> _Candidates:
    """The 2K best one-token extensions per sentence: K survive even if K of them end in EOS.

    `scores` (B', k) are the log-probabilities of the k hypotheses per sentence so far (K, or 1
    at the first step), `log_probs` (B'·k, V) the step's. Adding a hypothesis' score keeps the
    order of its row, so each of the sentence's 2K best extensions is among the 2K best tokens
    of its own hypothesis: a top-k per row of `log_probs`, then one over the k·2K sums, finds
    them with the same sums as ranking all k·V, without writing a (B', k·V) tensor each step.
    """
    sentences, hypotheses = scores.shape
    per_row = min(2 * beam_size, log_probs.size(1))
    row_scores, row_tokens = top_k_rows(log_probs, per_row)  # (N, 2K) each
    extended = scores.unsqueeze(2) + row_scores.view(sentences, hypotheses, per_row)
    top, flat = extended.view(sentences, -1).topk(min(2 * beam_size, hypotheses * per_row), dim=1)
    offsets = torch.arange(sentences, device=scores.device).unsqueeze(1) * hypotheses
    tokens = row_tokens.view(sentences, -1).gather(1, flat)  # (B', 2K)
    return _Candidates(top, offsets + flat // per_row, tokens)


def finalize(
    cands: _Candidates,
    beams: _Beams,
    finished: list[list[Hypothesis]],
    *,
    beam_size: int,
    eos_id: int,
    alpha: float,
    src_lens: list[int],
) -> None:
    """Move the EOS candidates among each sentence's K best into `finished`."""
    top_k = (slice(None), slice(0, beam_size))
    ended = (cands.tokens[top_k] == eos_id) & torch.isfinite(cands.scores[top_k])  # (B', K)
    if not ended.any():
        return
    sentence_idx, rank = ended.nonzero(as_tuple=True)
    rows = cands.rows[sentence_idx, rank]  # (M,) parents of the ended candidates
    tokens = beams.tokens[rows].tolist()
    log_probs = cands.scores[sentence_idx, rank].tolist()
    attention = None if beams.attention is None else beams.attention[rows]  # (M, t+1, S)
    for m, i in enumerate(sentence_idx.tolist()):
        sentence = int(beams.sentences[i])
        att = None if attention is None else attention[m]
        finished[sentence].append(
            _hypothesis(tokens[m], log_probs[m], alpha, att, src_lens[sentence])
        )
    beams.num_finished = beams.num_finished + ended.sum(1).cpu()


def advance(
    cands: _Candidates,
    beams: _Beams,
    state: DecoderState,
    at_limit: Tensor,
    *,
    beam_size: int,
    eos_id: int,
) -> tuple[_Beams, DecoderState, Tensor] | None:
    """Keep the K best non-EOS candidates of each unfinished sentence and drop finished ones.

    Returns the new beams, their state and the tokens to feed next (N',); None once all ended.
    """
    alive = cands.scores.masked_fill(cands.tokens == eos_id, -math.inf)
    # fewer than K only when the vocabulary is smaller than 2K (first step of a toy model)
    scores, pos = alive.topk(min(beam_size, alive.size(1)), dim=1)  # (B', K)
    done = (beams.num_finished >= beam_size) | at_limit | ~torch.isfinite(scores[:, 0]).cpu()
    keep = (~done).nonzero().flatten()
    if keep.numel() == 0:
        return None
    on_device = keep.to(scores.device)
    pos = pos[on_device]
    rows = cands.rows[on_device].gather(1, pos).flatten()  # (N',) parent rows
    tokens = cands.tokens[on_device].gather(1, pos).flatten()  # (N',)
    new = _Beams(
        sentences=beams.sentences[keep],
        max_len=beams.max_len[keep],
        num_finished=beams.num_finished[keep],
        scores=scores[on_device],
        tokens=torch.cat([beams.tokens[rows], tokens.unsqueeze(1)], dim=1),
        attention=None if beams.attention is None else beams.attention[rows],
    )
    return new, state.reorder(rows), tokens


@torch.inference_mode()
def beam_search(
    model: Seq2SeqModel,
    src: Tensor,
    src_lengths: Tensor,
    settings: SearchSettings,
    *,
    bos_id: int,
    eos_id: int,
    n_best: int = 1,
    return_attention: bool = False,
) -> list[list[Hypothesis]]:
    """Beam search; per sentence the `n_best` finished hypotheses, best normalised score first."""
    beam_size, alpha = settings.beam_size, settings.alpha
    _check_args(beam_size, n_best, alpha)
    if src.size(0) == 0:
        return []
    state = _start(model, src, src_lengths)  # one row per sentence until the first step
    batch_size, src_lens = src.size(0), src_lengths.tolist()
    beams = _initial_beams(
        src, max_output_lengths(src_lengths, settings.max_len_a, settings.max_len_b)
    )
    finished: list[list[Hypothesis]] = [[] for _ in range(batch_size)]
    prev = src.new_full((batch_size,), bos_id)
    limits = dict(beam_size=beam_size, eos_id=eos_id)  # what finalize and advance both apply
    for t in itertools.count():  # ends at max_len at the latest, where only EOS is allowed
        out = model.step(prev, state, return_attention=return_attention)
        at_limit = beams.max_len == t  # (B',)
        rows_at_limit = at_limit.repeat_interleave(beams.scores.size(1))  # (N,)
        log_probs = _step_log_probs(out, rows_at_limit, eos_id)
        cands = select_top_k(beams.scores, log_probs, beam_size)
        beams.attention = _append_attention(beams.attention, out, return_attention)
        finalize(cands, beams, finished, **limits, alpha=alpha, src_lens=src_lens)
        advanced = advance(cands, beams, out.state, at_limit, **limits)
        if advanced is None:
            break
        beams, state, prev = advanced
    return [sorted(hyps, key=lambda h: h.score, reverse=True)[:n_best] for hyps in finished]


def search(
    model: Seq2SeqModel,
    src: Tensor,
    src_lengths: Tensor,
    settings: SearchSettings,
    *,
    bos_id: int,
    eos_id: int,
    n_best: int = 1,
    return_attention: bool = False,
) -> list[list[Hypothesis]]:
    """Greedy search for beam_size 1 (which beam search would equal, only slower), else beam."""
    kwargs = dict(bos_id=bos_id, eos_id=eos_id, return_attention=return_attention)
    if settings.beam_size == 1 and n_best == 1:
        return greedy_search(model, src, src_lengths, settings, **kwargs)
    return beam_search(model, src, src_lengths, settings, n_best=n_best, **kwargs)


def translate_batches(
    model: Seq2SeqModel,
    batches: Sequence[Batch],
    settings: SearchSettings,
    *,
    bos_id: int,
    eos_id: int,
    device: torch.device | str | None = None,
    progress: bool = True,
) -> list[list[int]]:
    """The best hypothesis' ids for every sentence of `batches`, in corpus order (`Batch.indices`).

    The model is put in eval mode for the search and then back in its previous mode.
    """
    device = device if device is not None else _model_device(model)
    by_index: dict[int, list[int]] = {}
    was_training = model.training
    model.eval()
    try:
        total = sum(batch.size for batch in batches)
        with tqdm(
            total=total, desc="decoding", unit="sent", disable=None if progress else True
        ) as bar:
            for batch in batches:
                batch = batch.to(device)
                nbest = search(
                    model, batch.src, batch.src_lengths, settings, bos_id=bos_id, eos_id=eos_id
                )
                for index, hyps in zip(batch.indices.tolist(), nbest):
                    by_index[index] = hyps[0].tokens
                bar.update(batch.size)
    finally:
        model.train(was_training)
    return _in_corpus_order(by_index, total)


def _model_device(model: Seq2SeqModel) -> torch.device:
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def _in_corpus_order(by_index: dict[int, list[int]], total: int) -> list[list[int]]:
    if sorted(by_index) != list(range(total)):
        raise ValueError(
            f"Batch.indices must number the {total} sentences 0..{total - 1} once each; got "
            f"{len(by_index)} distinct indices from {min(by_index, default=None)} to "
            f"{max(by_index, default=None)}"
        )
    return [by_index[i] for i in range(total)]
