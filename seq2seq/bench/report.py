"""The benchmark's results as tables: ours alone (`results.md`) and beside JoeyNMT 2.3's from
the same machine (`vs_joeynmt.md`, scripts/bench_vs_joeynmt.sh), with each ratio checked
against the model's goal (configs/bench/<model>.yaml). Both are made from results.json alone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from seq2seq import evaluation
from seq2seq.bench.machine import measured_on


def write(out: Path, results: dict[str, Any], joeynmt_dir: Path | None) -> list[str]:
    """results.json, results.md and, given JoeyNMT's results folder, vs_joeynmt.md in `out`;
    the tables written."""
    evaluation.write_json(out / "results.json", results)
    tables = [markdown(results)]
    evaluation.write_lines(out / "results.md", tables[0].splitlines())
    if joeynmt_dir is not None:
        tables.append(versus_joeynmt(results, joeynmt_dir))
        evaluation.write_lines(out / "vs_joeynmt.md", tables[1].splitlines())
    return tables


def markdown(results: dict[str, Any]) -> str:
    """Our results, one row per model, as docs/performance.md shows them."""
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
            f"| {name} | {r['device']} {_precisions(r)}, {r['threads']} | "
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
    """Markdown: our results next to JoeyNMT's from the same machine, ratios against goals."""
    beam = results["settings"]["beam_size"]
    lines = [
        f"Ours: {measured_on(results['machine'])} JoeyNMT 2.3: its results in {joeynmt_dir}.",
        "",
        f"| model (JoeyNMT peer) | tgt tokens/s ours / JoeyNMT | ratio (goal) | greedy sent/s "
        f"ours / JoeyNMT | beam{beam} sent/s ours / JoeyNMT | ratio (goal) | "
        f"BLEU beam{beam} ours / JoeyNMT | beam{beam} words out ours / JoeyNMT |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, ours in results["models"].items():
        peer, goals = ours["joeynmt"]["peer"], ours["joeynmt"]["goals"]
        joey = read_joeynmt(joeynmt_dir, peer, beam, results["settings"]["updates"])
        search = ours["decode"][f"beam{beam}"]
        lines.append(
            f"| {name} ({peer}) | "
            + _pair(
                ours["train"]["tgt_tokens_per_s"], joey["train"], "trg_tok_per_s", goals["train"]
            )
            + " | "
            + _pair(ours["decode"]["greedy"]["sentences_per_s"], joey["greedy"], "sent_per_s")
            + " | "
            + _pair(search["sentences_per_s"], joey["beam"], "sent_per_s", goals["beam"])
            + f" | {search['bleu']:.1f} / {_get(joey['beam'], 'bleu')}"
            + f" | {search['hyp_words']:,} / {_get(joey['beam'], 'hyp_words')} |"
        )
    return "\n".join(lines) + "\n"


def _pair(ours: float, joey: dict | None, key: str, goal: float | None = None) -> str:
    """'ours / theirs' and, with a goal, ' | ratio (>= goal: met or missed)'."""
    text = f"{ours:,.1f} / {_get(joey, key)}"
    if goal is None:
        return text
    if joey is None:
        return text + f" | - (>= {goal})"
    ratio = ours / joey[key]
    return text + f" | {ratio:.2f}x (>= {goal}: {'met' if ratio >= goal else 'missed'})"


def _get(record: dict | None, key: str) -> str:
    return "-" if record is None else f"{record[key]:,.1f}"


def _precisions(result: dict[str, Any]) -> str:
    """ "bf16", or "bf16 train / fp32 decode" when the search ran in another precision."""
    training = result["precision"]
    decoding = result.get("decoding_precision", training)  # results before it was recorded
    return training if decoding == training else f"{training} train / {decoding} decode"
