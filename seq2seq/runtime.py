"""Device, precision, threads and random state: the parts of a run that are not the model."""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import platform
import random
import signal
import sys
from typing import Any

import numpy as np
import torch

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={name!r} but CUDA is not available; use device=cpu or auto")
    return torch.device(name)


def resolve_precision(precision: str, device: torch.device) -> str:
    """`auto` is bf16 autocast on CUDA and on CPUs with bf16 instructions (AVX512-BF16, AMX),
    fp32 on other CPUs, where bf16 is emulated and slower than fp32."""
    if precision not in PRECISIONS:
        raise ValueError(f"trainer.precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "auto":
        return "bf16" if device.type == "cuda" or cpu_has_bf16() else "fp32"
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("trainer.precision=fp16 needs a CUDA device")
    return precision


def resolve_decoding_precision(precision: str, device: torch.device) -> str:
    """Search's precision: `auto` is bf16 on CUDA and fp32 on a CPU, even one with bf16
    instructions: there a search's many small steps gain little or lose (local-p decoded test2016
    at 0.57x the sentences/s in bf16, docs/performance.md), and fp32 gives the exact hypotheses
    that the search's equivalence tests pin."""
    if precision == "auto" and device.type == "cpu":
        return "fp32"
    return resolve_precision(precision, device)


def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bf16 matrices natively. On an AMD EPYC with AVX512-BF16 a
    Multi30k training update under bf16 autocast took 0.60-0.78x the CPU time of fp32
    (docs/performance.md, "bf16 on a CPU")."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, check, lambda: False)() for check in checks)


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def configure_cpu(device: torch.device, num_threads: int) -> None:
    """On a CPU device: `num_threads` intra-op threads, and an allocator that keeps what it frees.

    glibc hands out blocks above its mmap threshold (128 KiB, raised up to 32 MiB as it goes) as
    fresh pages from the kernel and gives them back on free, so the big temporaries of every
    step (the (B·T, V) logits and their gradient, beam search's (N, V) scores) page-fault anew
    each time. Keeping freed memory in the process instead made a CPU training step 8-12%
    faster on Multi30k; the process then stays near its peak resident size.
    """
    if device.type != "cpu":
        return
    torch.set_num_threads(num_threads)
    _retain_freed_memory()


# mallopt(3) parameters from glibc's malloc.h
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_RETAINED_BYTES = 1 << 30


def _retain_freed_memory() -> None:
    """Serve blocks up to 1 GiB from the heap and return free heap to the kernel only beyond
    1 GiB (both thresholds fixed, which also stops glibc's adjusting them); glibc only."""
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return
    libc = ctypes.CDLL("libc.so.6")
    libc.mallopt(_M_MMAP_THRESHOLD, _RETAINED_BYTES)
    libc.mallopt(_M_TRIM_THRESHOLD, _RETAINED_BYTES)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


_PR_SET_PDEATHSIG = 1  # prctl(2) option, linux/prctl.h


def die_with_parent() -> None:
    """On Linux, have the kernel send this process SIGTERM when its parent dies: a killed bench
    or sweep would otherwise leave its workers training on, for nobody, slowing what runs next."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def end_with_launcher() -> None:
    """In a launcher's worker process (Hydra's joblib launcher runs sweep points in them), stop
    when the launcher dies: SIGTERM, on which training saves a checkpoint and stops. A process
    started from a shell is left alone: `nohup python -m seq2seq.train` must outlive it."""
    if multiprocessing.parent_process() is not None:
        die_with_parent()
