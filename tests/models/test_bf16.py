"""bf16 autocast on a CPU: `precision=auto` picks it where the CPU has bf16 instructions, and every
model family and attention variant trains under it as in fp32 (fp32 weights, loss and gradients
close to fp32's)."""

from __future__ import annotations

import pytest
import support
import torch
import torch.nn.functional as F
from hydra.utils import instantiate

from seq2seq import runtime, variants

VOCAB, PAD, BOS = 23, 0, 2
SIZES = {
    "rnn": ("model.hidden_size=32", "model.embedding_size=32"),
    "transformer": ("model.d_model=32", "model.ff_size=64", "model.num_heads=2"),
}


@pytest.mark.parametrize(
    ("device", "avx512_bf16", "amx", "expected"),
    [
        ("cuda", False, False, "bf16"),
        ("cpu", True, False, "bf16"),
        ("cpu", False, True, "bf16"),
        ("cpu", False, False, "fp32"),
    ],
)
def test_auto_precision_is_bf16_where_the_device_multiplies_bf16_natively(
    monkeypatch, device, avx512_bf16, amx, expected
):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    assert runtime.resolve_precision("auto", torch.device(device)) == expected
    assert runtime.resolve_precision("fp32", torch.device(device)) == "fp32"


@pytest.mark.parametrize(
    ("precision", "device", "expected"),
    [("auto", "cpu", "fp32"), ("auto", "cuda", "bf16"), ("bf16", "cpu", "bf16")],
)
def test_search_decodes_in_fp32_on_a_cpu_unless_bf16_is_asked_for(
    monkeypatch, precision, device, expected
):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    assert runtime.resolve_decoding_precision(precision, torch.device(device)) == expected


def build(variant: str) -> torch.nn.Module:
    if variant == variants.TRANSFORMER:
        overrides = ("model=transformer", *SIZES["transformer"])
    else:
        overrides = ("model=rnn", f"model/attention={variant}", *SIZES["rnn"])
    cfg = support.compose_model(*overrides, "model.dropout=0.0")
    torch.manual_seed(0)
    return instantiate(cfg, src_vocab_size=VOCAB, tgt_vocab_size=VOCAB, pad_id=PAD).train()


def tokens(lengths: list[int], seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    batch = torch.randint(BOS + 2, VOCAB, (len(lengths), max(lengths)), generator=generator)
    for row, length in enumerate(lengths):
        batch[row, length:] = PAD
    return batch


def training_step(model: torch.nn.Module, precision: str) -> tuple[torch.Tensor, ...]:
    """The trainer's loss (fp32 cross-entropy over the real target positions), the gradient and
    the logits."""
    src, src_lengths = tokens([9, 6, 4], seed=1), torch.tensor([9, 6, 4])
    tgt = tokens([8, 7, 5], seed=2)
    tgt_in, tgt_out = tgt[:, :-1], tgt[:, 1:]
    scored = tgt_out != PAD
    with runtime.autocast(torch.device("cpu"), precision):
        logits = model(src, src_lengths, tgt_in, positions=scored).logits
    loss = F.cross_entropy(logits.float(), tgt_out[scored])
    loss.backward()
    gradient = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
    return loss.detach(), gradient, logits


@pytest.mark.parametrize("variant", variants.names())
def test_every_variant_trains_under_cpu_bf16_as_in_fp32(variant):
    loss_fp32, gradient_fp32, _ = training_step(build(variant), "fp32")
    model = build(variant)
    loss_bf16, gradient_bf16, logits = training_step(model, "bf16")
    assert logits.dtype == torch.bfloat16  # the output projection did run in bf16
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert loss_bf16.dtype == torch.float32 and gradient_bf16.dtype == torch.float32
    torch.testing.assert_close(loss_bf16, loss_fp32, rtol=0.02, atol=0)
    cosine = F.cosine_similarity(gradient_bf16, gradient_fp32, dim=0)
    assert cosine > 0.99, f"{variant}: bf16 gradient off fp32's (cosine {cosine:.4f})"
