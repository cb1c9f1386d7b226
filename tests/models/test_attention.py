"""Properties every attention variant must have, one module at a time.

Each test runs for every file in configs/model/attention/, composed through Hydra, so a new
variant is tested without editing this file. Model-level properties (padding, step-wise decoding,
reordering, gradients, learning) are in test_rnn.py.
"""

from __future__ import annotations

import pytest
import support
import torch
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf
from torch.utils import _pytree as pytree
from torch.utils._python_dispatch import TorchDispatchMode

from seq2seq.data.batch import length_mask
from seq2seq.models.rnn.attention import (
    Attention,
    EncoderMemory,
    LocalAttention,
    LuongDotAttention,
    LuongLocalPAttention,
)
from seq2seq.models.rnn.attention.local import clip_to_sentence, gather_window, window_positions

CONFIG_DIR = support.CONFIG_DIR
ATTENTION_FILES = sorted((CONFIG_DIR / "model" / "attention").glob("*.yaml"))
VARIANTS = [p.stem for p in ATTENTION_FILES]
LOCAL_VARIANTS = [
    p.stem
    for p in ATTENTION_FILES
    if issubclass(get_class(OmegaConf.load(p).attention._target_), LocalAttention)
]
# the variants before issue 17; their softmax outputs must stay bit for bit what they were
ORIGINAL_VARIANTS = [
    "bahdanau",
    "luong_concat",
    "luong_dot",
    "luong_general",
    "luong_local_m",
    "luong_local_p",
    "luong_location",
]
HIDDEN = 16
LENGTHS = [9, 5, 1, 12]  # S = 12; a one-token and a full-length sentence on purpose
DOT_SCORE = "model.attention.score=dot"
STEPS = 15  # more target steps than any source has tokens: local windows run past the end


def rnn_config(variant: str, *overrides: str) -> DictConfig:
    return support.compose_model("model=rnn", f"model/attention={variant}", *overrides)


def build_attention(variant: str, *overrides: str) -> Attention:
    """The variant's module as the model builds it: query = decoder size, key = encoder size."""
    if DOT_SCORE in overrides:  # dot needs encoder outputs of the decoder's size
        overrides = (*overrides, "model.bidirectional=false")
    cfg = rnn_config(variant, f"model.hidden_size={HIDDEN}", *overrides)
    key_size = HIDDEN * (2 if cfg.bidirectional else 1)
    torch.manual_seed(0)
    return instantiate(cfg.attention)(query_size=HIDDEN, key_size=key_size)


def make_memory(attention: Attention, lengths: list[int], padded_to: int = 0) -> EncoderMemory:
    generator = torch.Generator().manual_seed(1)
    length = max(padded_to, *lengths)
    lengths_t = torch.tensor(lengths)
    mask = length_mask(lengths_t, length)
    values = torch.randn(len(lengths), length, attention.key_size, generator=generator)
    values = values * mask.unsqueeze(-1)  # like packed encoder outputs: zero on padding
    return EncoderMemory(
        values=values, keys=attention.project_keys(values), mask=mask, lengths=lengths_t
    )


def queries(batch: int, steps: int, scale: float = 1.0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(2)
    return scale * torch.randn(batch, steps, HIDDEN, generator=generator)


@pytest.mark.parametrize("variant", VARIANTS)
def test_weights_are_distributions_over_real_source_positions(variant):
    attention = build_attention(variant)
    memory = make_memory(attention, LENGTHS)
    output = attention(queries(len(LENGTHS), STEPS), memory, step=0)
    weights = output.dense_weights(memory.mask.size(1))  # (B, T, S)

    assert weights.shape == (len(LENGTHS), STEPS, max(LENGTHS))
    assert (weights >= 0).all()
    padding = ~memory.mask.unsqueeze(1).expand_as(weights)
    assert (weights[padding] == 0).all(), "padding must get exactly zero weight"
    totals = weights.sum(-1)
    if attention.normalised:
        torch.testing.assert_close(totals, torch.ones_like(totals))
    else:  # local-p's Gaussian scales the window's softmax down, never up
        assert (totals > 0).all() and (totals <= 1 + 1e-6).all()
    if getattr(attention, "heads", 1) == 1:  # several heads mix their contexts: tested below
        torch.testing.assert_close(output.context, torch.bmm(weights, memory.values))


@pytest.mark.parametrize("variant", LOCAL_VARIANTS)
@pytest.mark.parametrize("step", [0, 4])
def test_local_weights_vanish_outside_the_window_clipped_at_sentence_ends(variant, step):
    half_width = 2
    attention = build_attention(variant, f"model.attention.half_width={half_width}")
    memory = make_memory(attention, LENGTHS)
    query = queries(len(LENGTHS), STEPS)
    center = attention.center(query, memory, step).unsqueeze(-1)  # (B, T, 1)
    weights = attention(query, memory, step).dense_weights(max(LENGTHS))

    source = torch.arange(max(LENGTHS)).view(1, 1, -1)
    last = (memory.lengths - 1).view(-1, 1, 1)
    window = (source >= center - half_width) & (source <= center + half_width) & (source <= last)
    assert torch.equal(weights > 0, window), "support must be exactly window ∩ sentence"
    assert (center - half_width < 0).any() and (center + half_width > last).any(), (
        "the test must exercise clipping at both sentence ends"
    )


@pytest.mark.parametrize("variant", LOCAL_VARIANTS)
@pytest.mark.parametrize("scale", [0.0, 1.0, 1e3])  # 1e3 saturates local-p's sigmoid
def test_local_center_lies_in_the_true_sentence(variant, scale):
    attention = build_attention(variant, "model.attention.half_width=2")
    memory = make_memory(attention, LENGTHS)
    query = queries(len(LENGTHS), STEPS, scale=scale)
    center = attention.center(query, memory, step=3)  # (B, T)
    lengths = memory.lengths.unsqueeze(1).float()
    assert (center >= 0).all() and (center <= lengths).all()

    output = attention(query, memory, step=3)
    assert torch.isfinite(output.context).all()
    assert (output.dense_weights(max(LENGTHS)).sum(-1) > 0).all(), "every window keeps a position"

    # p_t depends on each sentence's true length S, not on how far the batch is padded
    wider = make_memory(attention, LENGTHS, padded_to=3 * max(LENGTHS))
    torch.testing.assert_close(attention.center(query, wider, step=3), center)


@pytest.mark.parametrize("variant", LOCAL_VARIANTS)
def test_local_cost_grows_with_the_window_not_the_source_length(variant):
    def scores_computed(half_width: int, source_length: int) -> int:
        attention = build_attention(variant, f"model.attention.half_width={half_width}")
        shapes = []
        score = attention.content.score

        def counting_score(query, keys):
            shapes.append((query.shape, keys.shape))
            return score(query, keys)

        attention.content.score = counting_score
        memory = make_memory(attention, [source_length, source_length // 2])
        attention(queries(2, 3), memory, step=0)
        return sum(q[0] * q[1] * k[1] for q, k in shapes)  # queries x keys actually scored

    for half_width in (2, 6):
        per_query = 2 * half_width + 1
        assert scores_computed(half_width, 40) == 2 * 3 * per_query
        assert scores_computed(half_width, 400) == 2 * 3 * per_query
        # a source of at most 2W positions is scored whole (_whole_source): still O(w) a query
        assert scores_computed(half_width, 2 * per_query) == 2 * 3 * 2 * per_query


@pytest.mark.parametrize("variant", VARIANTS)
def test_modules_keep_no_per_batch_state(variant):
    attention = build_attention(variant)
    before = {k: v for k, v in vars(attention).items() if not k.startswith("_")}
    memory = make_memory(attention, LENGTHS)
    attention(queries(len(LENGTHS), 2), memory, step=0)
    after = {k: v for k, v in vars(attention).items() if not k.startswith("_")}
    assert after == before
    assert not list(attention.buffers())


def test_location_weights_beyond_max_source_length_are_zero():
    attention = build_attention("luong_location", "model.attention.max_source_length=4")
    memory = make_memory(attention, [7, 3])
    weights = attention(queries(2, 5), memory, step=0).weights  # (B, T, S)
    assert (weights[..., 4:] == 0).all()
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 5))


def test_memory_reorder_follows_the_indices():
    attention = build_attention("luong_general")
    memory = make_memory(attention, LENGTHS)
    indices = torch.tensor([3, 0, 0])
    reordered = memory.reorder(indices)
    for field in ("values", "keys", "mask", "lengths"):
        assert torch.equal(getattr(reordered, field), getattr(memory, field)[indices])


def test_dot_score_needs_equal_query_and_key_sizes():
    with pytest.raises(ValueError, match="bidirectional"):
        LuongDotAttention(query_size=HIDDEN, key_size=2 * HIDDEN)


@pytest.mark.parametrize("variant", LOCAL_VARIANTS)
@pytest.mark.parametrize(
    ("override", "message"),
    [("model.attention.score=bilinear", "concat"), ("model.attention.half_width=0", ">= 1")],
)
def test_local_options_are_checked(variant, override, message):
    with pytest.raises(ValueError, match=message):
        build_attention(variant, override)


def test_local_m_centers_on_the_target_position_up_to_the_sentence_end():
    attention = build_attention("luong_local_m")
    memory = make_memory(attention, LENGTHS)
    center = attention.center(queries(len(LENGTHS), STEPS), memory, step=2)
    targets = torch.arange(2, 2 + STEPS).unsqueeze(0)
    expected = torch.minimum(targets, memory.lengths.unsqueeze(1) - 1).float()
    torch.testing.assert_close(center, expected)


@pytest.mark.parametrize("variant", LOCAL_VARIANTS)
@pytest.mark.parametrize(
    "score", ["model.attention.score=general", "model.attention.score=concat", DOT_SCORE]
)
def test_local_weights_with_equal_scores_are_uniform_times_the_prior(variant, score):
    """With all keys equal the window's softmax is uniform over window ∩ sentence (each
    position counted once), so a weight is 1 / (positions in it), times local-p's Gaussian
    exp(-(s - p_t)^2 / (2σ^2)) with σ = D / 2."""
    half_width = 4
    attention = build_attention(variant, f"model.attention.half_width={half_width}", score)
    memory = make_memory(attention, LENGTHS)
    flat = torch.zeros_like(memory.values)
    memory = EncoderMemory(flat, attention.project_keys(flat), memory.mask, memory.lengths)
    query = queries(len(LENGTHS), STEPS)
    center = attention.center(query, memory, step=0).unsqueeze(-1)  # (B, T, 1)
    weights = attention(query, memory, step=0).dense_weights(max(LENGTHS))  # (B, T, S)

    inside = weights > 0
    expected = 1 / inside.sum(-1, keepdim=True).float().expand_as(weights)
    if isinstance(attention, LuongLocalPAttention):
        source = torch.arange(max(LENGTHS)).view(1, 1, -1).float()
        expected = expected * torch.exp(-((source - center) ** 2) / (2 * (half_width / 2) ** 2))
    torch.testing.assert_close(weights[inside], expected[inside])


# ----------------------------------------------------------------- normalisers, heads, top-k

SPARSE = ["model.attention.normalizer=sparsemax", "model.attention.normalizer=entmax15"]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("normalizer", SPARSE)
def test_sparse_normalizers_keep_every_variants_exact_zeros(variant, normalizer):
    narrow = (
        ["model.attention.half_width=2"] if "half_width" in rnn_config(variant).attention else []
    )
    attention = build_attention(variant, normalizer, *narrow)
    memory = make_memory(attention, LENGTHS)
    query = queries(len(LENGTHS), STEPS, scale=3.0)  # spread scores: sparse mappings cut some
    weights = attention(query, memory, step=0).dense_weights(max(LENGTHS))

    assert (weights >= 0).all()
    assert (weights[~memory.mask.unsqueeze(1).expand_as(weights)] == 0).all()
    totals = weights.sum(-1)
    if attention.normalised:
        torch.testing.assert_close(totals, torch.ones_like(totals))
    else:
        assert (totals > 0).all() and (totals <= 1 + 1e-6).all()
    if isinstance(attention, LocalAttention):
        center = attention.center(query, memory, 0).unsqueeze(-1)
        outside = (torch.arange(max(LENGTHS)) - center).abs() > 2
        assert (weights[outside] == 0).all(), "nothing outside the window"
    if "sparsemax" in normalizer:  # entmax15 zeroes less; test_attention_equations shows it does
        real_zeros = (weights == 0) & memory.mask.unsqueeze(1)
        assert real_zeros.any(), "sparsemax must zero some real positions here"


def test_unknown_normalizer_is_refused_naming_the_key():
    with pytest.raises(ValueError, match="model.attention.normalizer"):
        build_attention("luong_general", "model.attention.normalizer=sparse")


def todays_forward(attention, query, memory, step):
    """A frozen copy of the seven variants' forward before normalisers and heads existed
    (main at 3c52b74): softmax over the masked scores, over a gathered window if local."""

    def softmax(scores, mask):
        return scores.masked_fill(~mask, torch.finfo(scores.dtype).min).softmax(dim=-1)

    if not isinstance(attention, LocalAttention):
        weights = softmax(attention.score(query, memory.keys), memory.mask.unsqueeze(1))
        return torch.bmm(weights, memory.values), weights
    batch, steps, _ = query.shape
    center = attention.center(query, memory, step)
    positions, valid = window_positions(center, attention.half_width, memory.lengths)
    index = clip_to_sentence(positions, memory.lengths)
    keys = gather_window(memory.keys, index)
    scores = attention.content.score(query.reshape(batch * steps, 1, -1), keys)
    weights = softmax(scores.view(batch, steps, index.size(-1)), valid)
    weights = attention.reweight(weights, positions, center)
    values = keys if memory.keys is memory.values else gather_window(memory.values, index)
    context = torch.bmm(weights.view(batch * steps, 1, -1), values).view(batch, steps, -1)
    return context, weights


@pytest.mark.parametrize("variant", ORIGINAL_VARIANTS)
def test_softmax_variants_are_bit_identical_to_before(variant):
    attention = build_attention(variant, "model.attention.normalizer=softmax")
    if isinstance(
        attention, LocalAttention
    ):  # the gathered window, as then; test_speed_equivalence
        attention.whole_short_sources = False  # holds the whole-source path to it
    memory = make_memory(attention, LENGTHS)
    query = queries(len(LENGTHS), STEPS)
    output = attention(query, memory, step=3)
    context, weights = todays_forward(attention, query, memory, step=3)
    assert torch.equal(output.context, context) and torch.equal(output.weights, weights)


def test_multihead_heads_are_distributions_mixed_by_the_output_layer():
    attention = build_attention("multihead", "model.attention.heads=4")
    memory = make_memory(attention, LENGTHS)
    query = queries(len(LENGTHS), STEPS)
    output = attention(query, memory, step=0)
    heads = attention.normalize(attention.score(query, memory.keys), memory.mask[:, None, None])
    assert heads.shape == (len(LENGTHS), 4, STEPS, max(LENGTHS))
    torch.testing.assert_close(heads.sum(-1), torch.ones(len(LENGTHS), 4, STEPS))
    assert (heads[~memory.mask[:, None, None].expand_as(heads)] == 0).all()
    assert not torch.allclose(heads[:, 0], heads[:, 1]), "heads must differ"
    contexts = torch.einsum("bhts,bsk->bthk", heads, memory.values).flatten(2)
    torch.testing.assert_close(output.context, attention.output_layer(contexts))
    torch.testing.assert_close(output.weights, heads.mean(1))


@pytest.mark.parametrize("heads", [3, 0])
def test_multihead_heads_must_divide_the_hidden_size(heads):
    with pytest.raises(ValueError, match="model.attention.heads"):
        build_attention("multihead", f"model.attention.heads={heads}")


def test_top_k_keeps_k_real_positions_anywhere_in_the_sentence():
    half_width = 2
    attention = build_attention("luong_local_topk", f"model.attention.half_width={half_width}")
    memory = make_memory(attention, LENGTHS)
    weights = attention(queries(len(LENGTHS), STEPS), memory, 0).dense_weights(max(LENGTHS))
    kept = (weights > 0).sum(-1)  # (B, T)
    expected = memory.lengths.clamp(max=2 * half_width + 1).unsqueeze(1).expand_as(kept)
    assert torch.equal(kept, expected)
    # not a window: somewhere the kept positions are not contiguous
    first = (weights > 0).float().argmax(-1)
    last = max(LENGTHS) - 1 - (weights > 0).flip(-1).float().argmax(-1)
    assert (last - first + 1 > kept).any()


def test_top_k_selector_learns_through_the_kept_weights():
    """The choice of K_t passes no gradient; W_p and v_p of the relevance π(s) must still get
    one, through a_t(s) = normalize(score) · π(s)."""
    attention = build_attention("luong_local_topk", "model.attention.half_width=2")
    memory = make_memory(attention, LENGTHS)
    attention(queries(len(LENGTHS), STEPS), memory, 0).context.pow(2).sum().backward()
    for layer in (attention.relevance_layer, attention.relevance_energy):
        assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0


def test_top_k_refuses_the_concat_score():
    with pytest.raises(ValueError, match="concat"):
        build_attention("luong_local_topk", "model.attention.score=concat")


class AllocationCounter(TorchDispatchMode):
    """Bytes of every tensor the ops under it create (views and in-place results excluded):
    their sum and the largest one. Deterministic, unlike a process's resident memory."""

    def __init__(self) -> None:
        super().__init__()
        self.total = self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if not (func.is_view or func._schema.is_mutable):
            for tensor in pytree.tree_leaves(out):
                if isinstance(tensor, torch.Tensor):
                    size = tensor.numel() * tensor.element_size()
                    self.total += size
                    self.largest = max(self.largest, size)
        return out


def allocated_by_one_sentence(variant: str, length: int, hidden: int = 256) -> AllocationCounter:
    """What keys, forward and backward of one sentence of `length` source and target tokens
    allocate, at the default sizes (H = 256, bidirectional K = 512, D = 10)."""
    cfg = rnn_config(variant, f"model.hidden_size={hidden}")
    torch.manual_seed(0)
    attention = instantiate(cfg.attention)(query_size=hidden, key_size=2 * hidden)
    values = torch.randn(1, length, 2 * hidden, requires_grad=True)
    query = torch.randn(1, length, hidden, requires_grad=True)
    with AllocationCounter() as counter:
        keys = attention.project_keys(values)
        mask = torch.ones(1, length, dtype=torch.bool)
        memory = EncoderMemory(values, keys, mask, torch.tensor([length]))
        attention(query, memory, step=0).context.sum().backward()
    return counter


def test_top_k_costs_no_more_memory_than_local_p_on_long_sentences():
    """At k = 2D + 1 (both configs' D = 10) top-k allocates no more than local-p for a
    400-token sentence: local-p gathers 2D + 1 keys and values per target step, top-k one score
    per source position (T·S numbers) and the k values. Run with -s to see the numbers."""
    variants = ("luong_general", "luong_local_p", "luong_local_topk")  # general: for reference
    counts = {v: allocated_by_one_sentence(v, 400) for v in variants}
    for variant, count in counts.items():
        print(
            f"{variant}: {count.total / 2**20:.1f} MiB allocated, largest tensor "
            f"{count.largest / 2**20:.1f} MiB"
        )
    local, topk = counts["luong_local_p"], counts["luong_local_topk"]
    assert topk.total <= local.total and topk.largest <= local.largest
