"""The markdown table of docs/alignment.md from scripts/alignment_study.sh's runs."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path


def row(run: Path) -> list[str]:
    metrics = json.loads((run / "metrics.json").read_text())
    shift0 = json.loads((run / "eval" / "align.rwth_de_en" / "metrics.json").read_text())
    shifted = run / "eval" / "shift1.align.rwth_de_en" / "metrics.json"
    shift1 = json.loads(shifted.read_text()) if shifted.exists() else {"model": {"aer": math.nan}}
    best = metrics["train"]["best_update"]
    validation = next(v for v in metrics["validations"] if v["update"] == best)
    model, gold = shift0["model"], shift0["diagnostics"]
    layers = shift0.get("layers")
    return [
        run.name,
        f"{model['aer']:.3f}",
        f"{model['precision']:.2f}",
        f"{model['recall']:.2f}",
        f"{shift1['model']['aer']:.3f}",
        " / ".join(f"{aer:.3f}" for aer in layers.values()) if layers else "",
        f"{metrics['test']['greedy']['bleu']:.1f}",
        f"{validation['attn_entropy']:.2f} / {gold['attn_entropy']:.2f}",
        f"{validation['attn_eos_share']:.2f} / {gold['attn_eos_share']:.2f}",
        f"{validation['attn_monotonicity']:.2f} / {gold['attn_monotonicity']:.2f}",
    ]


def main(out: Path) -> None:
    header = [
        "variant",
        "AER",
        "precision",
        "recall",
        "AER shift=1",
        "AER per layer",
        "test BLEU (greedy)",
        "entropy val / gold",
        "on </s> val / gold",
        "monotonicity val / gold",
    ]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    runs = sorted(p.parents[2] for p in out.glob("*/eval/align.rwth_de_en/metrics.json"))
    for run in runs:
        print("| " + " | ".join(row(run)) + " |")
    shown = set()
    for run in runs:
        references = json.loads((run / "eval/align.rwth_de_en/metrics.json").read_text())
        for name, scores in references["references"].items():
            if isinstance(scores, dict) and name not in shown:
                shown.add(name)
                print(
                    f"{name}: AER {scores['aer']:.3f}, precision {scores['precision']:.2f}, "
                    f"recall {scores['recall']:.2f}"
                )


if __name__ == "__main__":
    main(Path(sys.argv[1]))
