"""`python -m seq2seq.bench startup [--runs N] [--checkpoint PATH] [--out DIR]` (`make
bench-startup`): how long commands take before they do their work.

Runs each command once to warm the file cache, then `runs` more times, the commands in turn
(so a change of load touches all alike), and keeps the median, min and max wall time, as
hyperfine does, with the CPU time beside it (a busy machine inflates wall time far more):

- `python -c "import torch"`: the floor of every command that computes;
- `python -m seq2seq.train --help` (goal < 1.5 s);
- `python -m seq2seq.translate checkpoint=<checkpoint>` given one sentence on stdin: the time
  until its translation is printed (goal < 1.5 s) and until the process has exited.

Then `python -X importtime` of that translate command, summarised: the packages its imports
spend the most time in, and what seq2seq's own modules import. Without `--checkpoint` it first
trains a model of the default configuration for a few updates on the toy copy task (seconds);
its vocabulary is far smaller than a real one, so give a real run's checkpoint to time what a
user waits for. Everything runs from the checkout, so it times this checkout's code.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from seq2seq import evaluation
from seq2seq.bench.machine import machine, measured_on
from seq2seq.paths import checkout_root

# issue 20's goals, median wall seconds: --help until it has exited, translate until its
# translation is printed
GOALS = {"train --help": ("exit", 1.5), "translate, first sentence": ("first_line", 1.5)}
SENTENCE = "Ein Mann fährt mit dem Fahrrad die Straße entlang ."
# a model of the default configuration, a few updates on a toy task: a trained checkpoint
TINY_RUN = (
    "data=toy_copy",
    "data.source.train_size=64",
    "data.source.validation_size=8",
    "data.source.test_size=8",
    "trainer.max_updates=2",
    "trainer.progress=false",
    "search=greedy",
)


def command_lines(checkpoint: Path) -> dict[str, tuple[list[str], str | None]]:
    """name -> (argv, stdin) of each timed command."""
    python = sys.executable
    return {
        "import torch": ([python, "-c", "import torch"], None),
        "train --help": ([python, "-m", "seq2seq.train", "--help"], None),
        "translate, first sentence": (
            [python, "-m", "seq2seq.translate", f"checkpoint={checkpoint}"],
            SENTENCE + "\n",
        ),
    }


def run_once(argv: list[str], stdin: str | None, cwd: Path) -> dict[str, float]:
    """Wall seconds to the first line on stdout and to the exit, and the CPU seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with tempfile.TemporaryFile() as errors:
        start = time.perf_counter()
        process = subprocess.Popen(
            argv, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors, text=True
        )
        if stdin is not None:
            process.stdin.write(stdin)
        process.stdin.close()
        process.stdout.readline()
        first_line = time.perf_counter() - start
        process.stdout.read()
        process.wait()
        exited = time.perf_counter() - start
        if process.returncode != 0:
            errors.seek(0)
            tail = errors.read().decode(errors="replace").strip().splitlines()[-1:]
            raise RuntimeError(f"{' '.join(argv)} failed ({process.returncode}): {tail}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return {"first_line": first_line, "exit": exited, "cpu": cpu}


def time_commands(commands: dict[str, tuple[list[str], str | None]], runs: int, cwd: Path):
    """Each command once unmeasured, then `runs` rounds of all of them; per command and
    measure (first_line, exit, cpu), the median, min and max in seconds."""
    for argv, stdin in commands.values():
        run_once(argv, stdin, cwd)
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, (argv, stdin) in commands.items():
            samples[name].append(run_once(argv, stdin, cwd))
    return {name: _summary(runs_of) for name, runs_of in samples.items()}


def _summary(samples: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    summary = {}
    for measure in samples[0]:
        values = [sample[measure] for sample in samples]
        summary[measure] = {
            "median": round(statistics.median(values), 3),
            "min": round(min(values), 3),
            "max": round(max(values), 3),
        }
    return summary


def parse_importtime(stderr: str) -> list[tuple[str, int, int, int]]:
    """(module, self µs, cumulative µs, depth) of each `-X importtime` line, in its order
    (a module's imports are listed before it, one level deeper)."""
    rows = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "[us]" in line:
            continue
        self_us, cumulative, name = line.removeprefix("import time:").split("|")
        depth = (len(name) - len(name.lstrip())) // 2
        rows.append((name.strip(), int(self_us), int(cumulative), depth))
    return rows


def importtime_summary(rows: list[tuple[str, int, int, int]], top: int = 12) -> dict[str, Any]:
    """The top-level packages by the time spent importing their own modules, and the modules
    outside seq2seq that seq2seq's modules import, by cumulative time, with the importer."""
    packages: dict[str, int] = {}
    for name, self_us, _, _ in rows:
        package = name.split(".")[0]
        packages[package] = packages.get(package, 0) + self_us
    pulled, parents = [], {-1: "seq2seq (the command)"}  # depth 0: run by `python -m`
    for name, _, cumulative, depth in reversed(rows):  # a parent comes before its imports
        parents[depth] = name
        parent = parents[depth - 1]
        if parent.startswith("seq2seq") and not name.startswith("seq2seq"):
            pulled.append({"module": name, "by": parent, "ms": round(cumulative / 1e3, 1)})
    by_package = sorted(packages.items(), key=lambda item: -item[1])[:top]
    return {
        "total_ms": round(sum(packages.values()) / 1e3, 1),
        "packages": [{"package": p, "ms": round(us / 1e3, 1)} for p, us in by_package],
        "from_seq2seq": sorted(pulled, key=lambda row: -row["ms"])[:top],
    }


def importtime_of(argv: list[str], stdin: str | None, cwd: Path) -> dict[str, Any]:
    traced = [argv[0], "-X", "importtime", *argv[1:]]
    done = subprocess.run(traced, cwd=cwd, input=stdin, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(traced)} failed: {done.stderr.strip()[-500:]}")
    return importtime_summary(parse_importtime(done.stderr))


def train_tiny_checkpoint(directory: Path, cwd: Path) -> Path:
    """A trained checkpoint of the default model, a few updates on the toy copy task."""
    argv = [sys.executable, "-m", "seq2seq.train", *TINY_RUN]
    argv += [f"cache_dir={directory / 'cache'}", f"hydra.run.dir={directory / 'run'}"]
    print("training a tiny model to translate with (toy copy task, a few seconds)", flush=True)
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr.strip()[-500:]}")
    return directory / "run"


def markdown(results: dict[str, Any]) -> str:
    s = results["settings"]
    lines = [
        measured_on(results["machine"]),
        "",
        f"Wall and CPU seconds, median (min-max) of {s['runs']} runs after one warm-up; "
        f"translate read `{s['checkpoint']}` ({s['checkpoint_mib']:.1f} MiB).",
        "",
        "| command | wall to first line | wall to exit | CPU | goal |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for name, t in results["commands"].items():
        verdict = ""
        if name in GOALS:
            measure, goal = GOALS[name]
            met = t[measure]["median"] < goal
            verdict = f"{measure.replace('_', ' ')} < {goal} s: {'met' if met else 'missed'}"
        lines.append(
            f"| {name} | {_span(t['first_line'])} | {_span(t['exit'])} | {_span(t['cpu'])} | "
            f"{verdict} |"
        )
    imports = results["importtime"]
    lines += [
        "",
        f"`python -X importtime` of the translate command: {imports['total_ms']:,.0f} ms in "
        "imports (timed imports run slower than untimed ones). Packages by the time their own "
        "modules took:",
        "",
        ", ".join(f"{row['package']} {row['ms']:,.0f} ms" for row in imports["packages"]) + ".",
        "",
        "What seq2seq's modules import (cumulative):",
        "",
        "| module | imported by | ms |",
        "| --- | --- | ---: |",
        *(f"| {r['module']} | {r['by']} | {r['ms']:,.0f} |" for r in imports["from_seq2seq"]),
        "",
        f"Command: `{s['command']}`.",
    ]
    return "\n".join(lines) + "\n"


def _span(stat: dict[str, float]) -> str:
    return f"{stat['median']:.2f} ({stat['min']:.2f}-{stat['max']:.2f})"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m seq2seq.bench startup", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--runs", type=int, default=5, help="timed runs of each command")
    parser.add_argument(
        "--checkpoint",
        type=Path,
        help="checkpoint or run directory to translate with (default: train a tiny one first)",
    )
    parser.add_argument("--out", type=Path, default=Path("bench"), help="folder for startup.*")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    return args


def main(argv: list[str]) -> dict[str, Any]:
    args = parse_args(argv)
    cwd = checkout_root() or Path.cwd()
    with tempfile.TemporaryDirectory(prefix="seq2seq-startup-") as tmp:
        checkpoint = args.checkpoint or train_tiny_checkpoint(Path(tmp), cwd)
        file = _checkpoint_file(checkpoint)
        commands = command_lines(checkpoint)
        results = {
            "machine": machine(),
            "settings": {
                "runs": args.runs,
                "checkpoint": str(args.checkpoint or "a tiny model trained on the toy copy task"),
                "checkpoint_mib": round(file.stat().st_size / 2**20, 1),
                "command": " ".join(["python -m seq2seq.bench startup", *argv]),
            },
            "commands": time_commands(commands, args.runs, cwd),
            "importtime": importtime_of(*commands["translate, first sentence"], cwd),
        }
    evaluation.write_json(args.out / "startup.json", results)
    table = markdown(results)
    evaluation.write_lines(args.out / "startup.md", table.splitlines())
    print(table)
    return results


def _checkpoint_file(checkpoint: Path) -> Path:
    from seq2seq import checkpoint as ckpt  # torch: only once the timing is under way

    return ckpt.resolve_checkpoint(checkpoint, prefer=ckpt.BEST)
