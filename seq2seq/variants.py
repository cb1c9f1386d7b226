"""The `variant` config group: one sweep point per model a comparison trains, made from the files
of configs/model/attention/ (an RNN with that attention) and the Transformer.

No file lists the variants: `register` stores one node per attention file in Hydra's config
store before Hydra composes, so a new file in configs/model/attention/ is a variant of
`experiment=compare_attention` and `experiment=attention_study` (whose sweeps glob the group),
of `variant=<name>` and of the tests that list `names()`, with no other edit.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hydra.core.config_store import ConfigStore

from seq2seq.cli import reports_errors

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
TRANSFORMER = "transformer"


def attention_names(config_dir: Path = CONFIG_DIR) -> list[str]:
    """The RNN attention variants: the files of configs/model/attention/, sorted."""
    return sorted(p.stem for p in (config_dir / "model" / "attention").glob("*.yaml"))


def names(config_dir: Path = CONFIG_DIR) -> list[str]:
    """Every variant: the RNN attention variants, then the Transformer."""
    return [*attention_names(config_dir), TRANSFORMER]


def register(config_dir: Path = CONFIG_DIR) -> None:
    """Store the `variant` group's nodes: `variant=<attention file>` is `model=rnn
    model/attention=<file>`, `variant=transformer` is `model=transformer`; either takes the size
    an experiment gives its family (configs/experiment/size/<experiment>_<family>.yaml)."""
    store = ConfigStore.instance()
    for name in attention_names(config_dir):
        models = {"override /model": "rnn", "override /model/attention": name}
        store.store(group="variant", name=name, node=_variant("rnn", models), package="_global_")
    models = {"override /model": TRANSFORMER}
    node = _variant(TRANSFORMER, models)
    store.store(group="variant", name=TRANSFORMER, node=node, package="_global_")


def _variant(family: str, models: dict[str, str]) -> dict:
    size = {"optional /experiment/size@model": f"${{oc.select:experiment,none}}_{family}"}
    return {"defaults": [size, *({k: v} for k, v in models.items())]}


TABLE_START = "<!-- variants: python -m seq2seq.variants --write docs/attention.md -->"
TABLE_END = "<!-- end of variants -->"


def header(name: str, config_dir: Path = CONFIG_DIR) -> dict[str, str]:
    """The `# paper:` and `# score:` lines of an attention file: its row of the docs table."""
    fields = {}
    for line in (config_dir / "model" / "attention" / f"{name}.yaml").read_text().splitlines():
        key, sep, value = line.removeprefix("# ").partition(": ")
        if line.startswith("# ") and sep and key in ("paper", "score"):
            fields[key] = value.strip()
    return fields


def table(config_dir: Path = CONFIG_DIR) -> str:
    """The markdown table of the RNN attention variants, one row per attention file."""
    rows = ["| config line | paper | score / alignment |", "| --- | --- | --- |"]
    for name in attention_names(config_dir):
        fields = header(name, config_dir)
        missing = {"paper", "score"} - fields.keys()
        if missing:
            raise ValueError(
                f"configs/model/attention/{name}.yaml needs a '# {sorted(missing)[0]}: ...' "
                "line under '# @package model' (its row of the variants table)"
            )
        rows.append(f"| `model/attention={name}` | {fields['paper']} | {fields['score']} |")
    return "\n".join(rows)


def with_table(page: str, config_dir: Path = CONFIG_DIR) -> str:
    """`page` with the text between TABLE_START and TABLE_END replaced by `table()`."""
    before, start, rest = page.partition(TABLE_START)
    _, end, after = rest.partition(TABLE_END)
    if not (start and end):
        raise ValueError(f"the page has no '{TABLE_START}' ... '{TABLE_END}' section")
    return f"{before}{TABLE_START}\n{table(config_dir)}\n{TABLE_END}{after}"


@reports_errors
def main(argv: list[str] | None = None) -> None:

    parser = argparse.ArgumentParser(
        prog="python -m seq2seq.variants",
        description="Print the table of attention variants (from the '# paper:' and '# score:' "
        "lines of configs/model/attention/*.yaml), or --write it into a docs page.",
    )
    parser.add_argument("--write", type=Path, help="page whose variants section to replace")
    args = parser.parse_args(argv)
    if args.write is None:
        print(table())
        return
    args.write.write_text(with_table(args.write.read_text()))


if __name__ == "__main__":
    main()
