"""`python -m seq2seq.bench [--models a,b] [--updates N] [overrides]`: how fast we train and decode.

For each reference model (`MODELS`), in a fresh process of its own so that its peak memory is
its own, with the real config (`configs/train.yaml` composed with `REFERENCE`, the model's
overrides and the command line's, in that order) and the real `Trainer`:

1. training throughput: `--updates` updates with no validation and no checkpoint; target tokens/s
   and updates/s over the wall-clock time between the end of update `--skip` and the end of the
   last one, so start-up, the first updates and everything after training are left out;
2. decoding speed of the model as trained there: greedy and beam search on the test split, as
   `python -m seq2seq.evaluate` decodes it (token-budget batches), sentences/s and BLEU;
3. parameter count and peak memory (RSS on CPU, allocated CUDA memory on a GPU).

On CUDA the trainer and search run under bf16 autocast (`trainer.precision=auto`).
Results go to `<out>/results.json` and `<out>/results.md` with the machine, threads, torch
version, date and load average. docs/performance.md compares them with JoeyNMT 2.3.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import json
import logging
import multiprocessing
import os
import platform
import resource
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import DictConfig

from seq2seq import cli, evaluation, runtime
from seq2seq.config import validate_config
from seq2seq.data import prepare_data
from seq2seq.decoding import SearchSettings
from seq2seq.inference import Translator, ValidationResult, Validator
from seq2seq.pipeline import build_model, build_trainer, count_parameters
from seq2seq.training.run_logger import RunLogger
from seq2seq.training.trainer import UpdateStats

log = logging.getLogger(__name__)

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"

# JoeyNMT's reference configuration (../shared/bench/joeynmt/configs): batches of ~920 target
# tokens. Our batch cost counts source + target with padding (B × (S + T)); in the default
# pools of 10 batches, 2250 gives 919.5 target tokens per update on Multi30k de-en
# (`python -m seq2seq.data data.max_tokens=2250`: 425,234 + 29,000 EOS in 494 batches).
# The optimisers are our model configs' own: Adam 3e-4 constant for the RNNs,
# configs/model/transformer.yaml's warm-up recipe (tests/test_bench.py holds them to JoeyNMT's).
REFERENCE = ("data.max_tokens=2250", "search.alpha=1.0")

# name -> overrides; dropout is the model configs' own (RNN 0.2, Transformer 0.1), label
# smoothing JoeyNMT's (RNN 0.0, Transformer 0.1)
MODELS: dict[str, tuple[str, ...]] = {
    "rnn_bahdanau": ("model=rnn", "model/attention=bahdanau", "trainer.label_smoothing=0.0"),
    "rnn_luong_general": (
        "model=rnn",
        "model/attention=luong_general",
        "model.decoder.input_feeding=true",
        "trainer.label_smoothing=0.0",
    ),
    "rnn_luong_local_p": (
        "model=rnn",
        "model/attention=luong_local_p",
        "model.decoder.input_feeding=true",
        "trainer.label_smoothing=0.0",
    ),
    # JoeyNMT's transformer.yaml ties source, target and output embeddings into one matrix
    "transformer": (
        "model=transformer",
        "model.share_embeddings=true",
        "trainer.label_smoothing=0.1",
    ),
}

NEVER = 10**9  # updates: validation and checkpoints stay out of the measured window


def compose_model_config(model: str, overrides: list[str], updates: int) -> DictConfig:
    """The train config of `model` as the bench runs it: REFERENCE, the model's overrides,
    then the caller's, then the bench's own budget (no validation, checkpoint or progress bar)."""
    budget = [
        f"trainer.max_updates={updates}",
        f"trainer.validate_every={NEVER}",
        f"trainer.checkpoint_every={NEVER}",
        "trainer.progress=false",
    ]
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("train", [*REFERENCE, *MODELS[model], *overrides, *budget])


class UpdateClock:
    """The run's real logger, plus the wall-clock time at the end of every update."""

    def __init__(self, inner: RunLogger, device: torch.device) -> None:
        self.inner, self.device = inner, device
        self.stamps: list[float] = []
        self.tgt_tokens: list[int] = []

    def train_update(self, update: int, stats: UpdateStats, lr: float) -> None:
        self.inner.train_update(update, stats, lr)
        _synchronize(self.device)
        self.stamps.append(time.perf_counter())
        self.tgt_tokens.append(stats.tgt_tokens)

    def validation(self, update: int, result: ValidationResult, model: Any = None) -> None:
        self.inner.validation(update, result, model)

    def flush(self) -> None:
        self.inner.flush()

    def throughput(self, skip: int, excluded: list[tuple[float, float]]) -> dict[str, float]:
        """Updates skip + 1 .. N: from the end of update `skip` to the end of the last one, less
        the `excluded` (start, end) spans within that window."""
        measured = len(self.stamps) - skip
        if skip < 1 or measured < 1:
            raise ValueError(
                f"need 1 <= skip < updates to measure anything, got skip={skip} of "
                f"{len(self.stamps)} updates"
            )
        begin, end = self.stamps[skip - 1], self.stamps[-1]
        inside = sum(b - a for a, b in excluded if begin <= a and b <= end)
        seconds = end - begin - inside
        tokens = sum(self.tgt_tokens[skip:])
        return {
            "updates_measured": measured,
            "seconds": round(seconds, 3),
            "tgt_tokens_per_s": round(tokens / seconds, 1),
            "updates_per_s": round(measured / seconds, 3),
            "tgt_tokens_per_update": round(tokens / measured, 1),
        }


class TimedValidator(Validator):
    """A validator that notes when it ran, so the throughput can leave those spans out (an epoch
    end validates whatever `trainer.validate_every` says, and the run's end validates)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.spans: list[tuple[float, float]] = []

    def run(self, model: Any, split: str, progress: bool = False) -> ValidationResult:
        start = time.perf_counter()
        try:
            return super().run(model, split, progress)
        finally:
            self.spans.append((start, time.perf_counter()))


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_throughput(
    cfg: DictConfig, data: Any, model: Any, device: torch.device, precision: str, skip: int
) -> dict[str, float]:
    """Train `model` for `trainer.max_updates` updates with the real Trainer; its throughput."""
    greedy = TimedValidator(data, device, precision, SearchSettings(**cfg.search))
    with tempfile.TemporaryDirectory(prefix="seq2seq-bench-") as run_dir:
        clock = UpdateClock(instantiate(cfg.logger)(run_dir=Path(run_dir)), device)
        trainer = build_trainer(
            cfg,
            model,
            data=data,
            run_dir=Path(run_dir),
            checkpoint_extras={},
            validator=greedy,
            device=device,
            logger=clock,
        )
        trainer.fit()
        clock.inner.close()
    return clock.throughput(skip, excluded=greedy.spans)


def decode_speed(
    cfg: DictConfig, data: Any, model: Any, device: torch.device, precision: str, beam_size: int
) -> dict[str, float]:
    """Sentences/s and BLEU of search with `beam_size` on the test split, evaluate's batches."""
    translate = Translator(
        data.tokenizer,
        device,
        precision,
        replace(SearchSettings(**cfg.search), beam_size=beam_size),
    )
    batches = data.batches("test")
    _synchronize(device)
    start = time.perf_counter()
    hypotheses = translate(model, batches, progress=False)
    _synchronize(device)
    seconds = time.perf_counter() - start
    return {
        "sentences": len(hypotheses),
        "batches": len(batches),
        "seconds": round(seconds, 3),
        "sentences_per_s": round(len(hypotheses) / seconds, 2),
        # how much was generated: sentences/s of an undertrained model that rambles (JoeyNMT's
        # decode.py records the same count) say less than this
        "hyp_words": sum(len(h.split()) for h in hypotheses),
        "bleu": round(evaluation.bleu(hypotheses, data.references("test")).score, 2),
    }


def bench_model(
    model_name: str, overrides: list[str], updates: int, skip: int, beam_size: int
) -> dict[str, Any]:
    """Everything measured of one model (the body of its worker process)."""
    cfg = compose_model_config(model_name, overrides, updates)
    validate_config(cfg)
    load = os.getloadavg()
    device = runtime.pick_device(cfg.device)
    runtime.configure_cpu(device, cfg.trainer.num_threads)
    runtime.seed_everything(cfg.seed)
    data = prepare_data(cfg.data, cfg.tokenizer, cfg.cache_dir, cfg.seed)
    model = build_model(cfg.model, data.tokenizer).to(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    precision = runtime.resolve_precision(cfg.trainer.precision, device)
    train = train_throughput(cfg, data, model, device, precision, skip)
    decode = {"greedy": decode_speed(cfg, data, model, device, precision, 1)}
    decode[f"beam{beam_size}"] = decode_speed(cfg, data, model, device, precision, beam_size)
    return {
        "overrides": [*REFERENCE, *MODELS[model_name], *overrides],
        "parameters": count_parameters(model),
        "threads": torch.get_num_threads(),
        "device": str(device),
        "precision": precision,
        "load_average_start": [round(x, 2) for x in load],
        "train": train,
        "decode": decode,
        "peak_memory_mib": round(_peak_memory_mib(device), 1),
    }


def _peak_memory_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10  # KiB on Linux


def bench_isolated(*args: Any) -> dict[str, Any]:
    """`bench_model` in a fresh process: its own peak RSS, no allocator or thread-pool state
    left over from the model before."""
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        return pool.submit(_worker, *args).result()


def _worker(*args: Any) -> dict[str, Any]:
    logging.basicConfig(level=logging.WARNING, format="[%(levelname)s] %(name)s: %(message)s")
    return bench_model(*args)


# ---------------------------------------------------------------------------------- report


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    info = {
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def measured_on(m: dict[str, Any]) -> str:
    """One sentence: when and on what, with the load average at the start."""
    gpu = f", GPU {m['gpu']}" if "gpu" in m else ""
    load = " ".join(map(str, m["load_average_start"]))
    return (
        f"Measured {m['date']} on {m['cpu']} ({m['cpu_count']} CPUs), torch {m['torch']}{gpu}; "
        f"load average at start {load}."
    )


def markdown(results: dict[str, Any]) -> str:
    """The results as the table docs/performance.md shows."""
    beam = f"beam{results['settings']['beam_size']}"
    lines = [
        measured_on(results["machine"]),
        "",
        f"| model | device, threads | tgt tokens/s | updates/s | greedy sent/s | "
        f"{beam} sent/s | BLEU greedy / {beam} | parameters | peak memory |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, r in results["models"].items():
        greedy, search = r["decode"]["greedy"], r["decode"][beam]
        lines.append(
            f"| {name} | {r['device']} {r['precision']}, {r['threads']} | "
            f"{r['train']['tgt_tokens_per_s']:,.0f} | {r['train']['updates_per_s']:.2f} | "
            f"{greedy['sentences_per_s']:,.1f} | {search['sentences_per_s']:,.1f} | "
            f"{greedy['bleu']:.1f} / {search['bleu']:.1f} | {r['parameters'] / 1e6:.2f} M | "
            f"{r['peak_memory_mib']:,.0f} MiB |"
        )
    s = results["settings"]
    lines += [
        "",
        f"Training: updates {s['skip'] + 1}-{s['updates']} of one run, no validation; "
        f"decoding: the {s['updates']}-update model on the test split. "
        f"Command: `{s['command']}`.",
    ]
    return "\n".join(lines) + "\n"


# ours -> JoeyNMT's run of the same model (../shared/bench/joeynmt/configs); JoeyNMT has no
# local attention, so local-p is held against its global Luong model, the same decoder
JOEYNMT_PEERS = {
    "rnn_bahdanau": "rnn_bahdanau",
    "rnn_luong_general": "rnn_luong",
    "rnn_luong_local_p": "rnn_luong",
    "transformer": "transformer",
}
# the speed targets of docs/performance.md: training and beam-5 speed over JoeyNMT's
TARGETS = {"rnn": (1.5, 2.0), "transformer": (1.2, 2.0)}


def read_joeynmt(results_dir: Path, peer: str, beam_size: int, updates: int) -> dict[str, Any]:
    """JoeyNMT's throughput and decoding results for `peer` after `updates` updates, as
    run_throughput.sh and run_decode.sh (300 updates) or scripts/bench_vs_joeynmt.sh (any
    number) leave them in $RESULTS; a missing file is a missing entry."""

    def load(path: Path) -> dict[str, Any] | None:
        return json.loads(path.read_text().strip().splitlines()[-1]) if path.exists() else None

    return {
        "train": load(results_dir / f"tp_{peer}.throughput.json"),
        "greedy": load(results_dir / "decode" / f"tp{updates}_{peer}.beam1.json"),
        "beam": load(results_dir / "decode" / f"tp{updates}_{peer}.beam{beam_size}.json"),
    }


def versus_joeynmt(results: dict[str, Any], joeynmt_dir: Path) -> str:
    """Markdown: our results next to JoeyNMT's from the same machine, ratios against targets."""
    beam = results["settings"]["beam_size"]
    lines = [
        f"Ours: {measured_on(results['machine'])} JoeyNMT 2.3: its results in {joeynmt_dir}.",
        "",
        f"| model (JoeyNMT peer) | tgt tokens/s ours / JoeyNMT | ratio (target) | greedy sent/s "
        f"ours / JoeyNMT | beam{beam} sent/s ours / JoeyNMT | ratio (target) | "
        f"BLEU beam{beam} ours / JoeyNMT | beam{beam} words out ours / JoeyNMT |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, ours in results["models"].items():
        peer = JOEYNMT_PEERS[name]
        joey = read_joeynmt(joeynmt_dir, peer, beam, results["settings"]["updates"])
        train_target, beam_target = TARGETS["transformer" if name == "transformer" else "rnn"]
        search = ours["decode"][f"beam{beam}"]
        lines.append(
            f"| {name} ({peer}) | "
            + _pair(ours["train"]["tgt_tokens_per_s"], joey["train"], "trg_tok_per_s", train_target)
            + " | "
            + _pair(ours["decode"]["greedy"]["sentences_per_s"], joey["greedy"], "sent_per_s")
            + " | "
            + _pair(search["sentences_per_s"], joey["beam"], "sent_per_s", beam_target)
            + f" | {search['bleu']:.1f} / {_get(joey['beam'], 'bleu')}"
            + f" | {search['hyp_words']:,} / {_get(joey['beam'], 'hyp_words')} |"
        )
    return "\n".join(lines) + "\n"


def _pair(ours: float, joey: dict | None, key: str, target: float | None = None) -> str:
    """'ours / theirs' and, with a target, ' | ratio (>= target: met or missed)'."""
    text = f"{ours:,.1f} / {_get(joey, key)}"
    if target is None:
        return text
    if joey is None:
        return text + f" | - (>= {target})"
    ratio = ours / joey[key]
    return text + f" | {ratio:.2f}x (>= {target}: {'met' if ratio >= target else 'missed'})"


def _get(record: dict | None, key: str) -> str:
    return "-" if record is None else f"{record[key]:,.1f}"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m seq2seq.bench", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--models", default=",".join(MODELS), help="comma-separated, of: " + ", ".join(MODELS)
    )
    parser.add_argument("--updates", type=int, default=300, help="training updates per model")
    parser.add_argument(
        "--skip", type=int, default=20, help="first updates left out of the throughput"
    )
    parser.add_argument("--beam-size", type=int, default=5)
    parser.add_argument(
        "--out", type=Path, default=Path("bench"), help="folder for results.json/.md"
    )
    parser.add_argument("--in-process", action="store_true", help="no worker process per model")
    parser.add_argument(
        "--joeynmt",
        type=Path,
        help="also write <out>/vs_joeynmt.md against JoeyNMT's results in this folder "
        "(the $RESULTS of ../shared/bench/joeynmt, see scripts/bench_vs_joeynmt.sh)",
    )
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of configs/train.yaml")
    args = parser.parse_intermixed_args(argv)
    unknown = sorted(set(args.models.split(",")) - set(MODELS))
    if unknown or not 1 <= args.skip < args.updates:
        parser.error(f"unknown models {unknown}" if unknown else "need 1 <= --skip < --updates")
    return args


def main(argv: list[str]) -> dict[str, Any]:
    args = parse_args(argv)
    results = {
        "machine": machine(),
        "settings": {
            "updates": args.updates,
            "skip": args.skip,
            "beam_size": args.beam_size,
            "overrides": args.overrides,
            "command": " ".join(["python -m seq2seq.bench", *argv]),
        },
        "models": {},
    }
    run = bench_model if args.in_process else bench_isolated
    for name in args.models.split(","):
        log.info("benchmarking %s", name)
        results["models"][name] = run(name, args.overrides, args.updates, args.skip, args.beam_size)
        log.info("%s: %s", name, results["models"][name])
    evaluation.write_json(args.out / "results.json", results)
    evaluation.write_lines(args.out / "results.md", markdown(results).splitlines())
    print(markdown(results))
    if args.joeynmt is not None:
        comparison = versus_joeynmt(results, args.joeynmt)
        evaluation.write_lines(args.out / "vs_joeynmt.md", comparison.splitlines())
        print(comparison)
    return results


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="[%(levelname)s] %(name)s: %(message)s")
    cli.reports_errors(main)(sys.argv[1:])
