"""The README and docs/*.md name only things that exist: make targets, `python -m seq2seq.<module>`
entry points, files of the repository (bench/ results included), config group choices and
config keys. A rename that leaves the docs behind fails here, not in a reader's terminal."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# `make x` in code (a backtick or a line of a code block before it), not "make the ..." in prose
MAKE_TARGET = re.compile(r"(?:^|`|\$ )make ([a-z][\w-]*)", flags=re.MULTILINE)
ENTRY_POINT = re.compile(r"python -m seq2seq\.([\w.]+)")
# a path into the repository's tracked folders; placeholders (<run>, {lang}, *, $VAR) are skipped
REPO_PATH = re.compile(r"(?<![\w./-])((?:configs|seq2seq|tests|scripts|bench|docs)/[\w./-]*[\w/])")
LINK = re.compile(r"\]\(([^)#\s]+)")
# `group=choice` or `group/sub=choice[,|choice...]`, for groups that are folders of configs/
# (not a function of Hydra's grammar such as `variant=glob(*)`)
GROUP_CHOICE = re.compile(r"(?<![\w./+~-])\+?([a-z_]+(?:/[a-z_]+)?)=([\w|,]++)(?!\()")
# choices that Hydra or its plugins bring, not configs/
PLUGIN_CHOICES = {
    ("hydra/launcher", "submitit_local"),
    ("hydra/launcher", "submitit_slurm"),
    ("hydra/launcher", "joblib"),  # the study's command on docs/results.md
}
# a dotted key of a config group (not a method call, `data.batches(...)`, nor a file name,
# `trainer.py`, `model.align`)
CONFIG_KEY = re.compile(
    r"(?<![\w./-])((?:trainer|search|optim|scheduler|data|model|logger|tokenizer|extract)"
    r"(?:\.[A-Za-z_]\w*)++)(?![(\w])"
)
FILE_SUFFIXES = {"py", "align", "json", "pt", "md", "yaml", "log", "csv", "png", "hyp"}
PYTHON_BLOCK = re.compile(r"```python\n.*?```", flags=re.DOTALL)
PLACEHOLDER = re.compile(r"[<{*$]")


def doc_text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def named(pattern: re.Pattern[str]) -> list[tuple[str, str]]:
    """(doc, match) for every match of `pattern` in every doc, each pair once."""
    found = {
        (doc.relative_to(ROOT).as_posix(), m.group(1))
        for doc in DOCS
        for m in pattern.finditer(doc_text(doc))
    }
    return sorted(found)


def make_targets() -> set[str]:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([\w-]+):", makefile, flags=re.MULTILINE))


@pytest.mark.parametrize(("doc", "target"), named(MAKE_TARGET))
def test_every_make_target_the_docs_name_exists(doc, target):
    assert target in make_targets(), f"{doc} names `make {target}`, which the Makefile lacks"


@pytest.mark.parametrize(("doc", "module"), named(ENTRY_POINT))
def test_every_entry_point_the_docs_name_exists(doc, module):
    base = ROOT / "seq2seq" / Path(*module.split("."))
    assert base.with_suffix(".py").is_file() or (base / "__main__.py").is_file(), (
        f"{doc} names `python -m seq2seq.{module}`, which does not exist"
    )


def cited_paths() -> list[tuple[str, str]]:
    """Repository paths the docs cite, as paths from the root: bare ones, and markdown links
    resolved from the doc's folder."""
    found = set()
    for doc in DOCS:
        text = doc_text(doc)
        for m in REPO_PATH.finditer(text):
            if not PLACEHOLDER.search(text[m.end() : m.end() + 1]):
                found.add((doc.relative_to(ROOT).as_posix(), m.group(1)))
        for m in LINK.finditer(text):
            if "://" not in m.group(1):
                target = (doc.parent / m.group(1)).resolve().relative_to(ROOT).as_posix()
                found.add((doc.relative_to(ROOT).as_posix(), target))
    return sorted(found)


@pytest.mark.parametrize(("doc", "path"), cited_paths())
def test_every_file_the_docs_cite_exists(doc, path):
    assert (ROOT / path).exists(), f"{doc} cites {path}, which is not in the repository"


def group_choices() -> list[tuple[str, str, str]]:
    found = set()
    for doc in DOCS:
        for group, values in (m.groups() for m in GROUP_CHOICE.finditer(doc_text(doc))):
            if not (CONFIGS / group).is_dir():
                continue
            for value in re.split(r"[|,]", values):
                if value and (group, value) not in PLUGIN_CHOICES:
                    found.add((doc.relative_to(ROOT).as_posix(), group, value))
    return sorted(found)


@pytest.mark.parametrize(("doc", "group", "choice"), group_choices())
def test_every_config_choice_the_docs_name_exists(doc, group, choice):
    assert (CONFIGS / group / f"{choice}.yaml").is_file(), (
        f"{doc} names `{group}={choice}`, but configs/{group}/{choice}.yaml does not exist"
    )


def options(group: str) -> list[str]:
    return sorted(f"{group}={p.stem}" for p in (CONFIGS / group).glob("*.yaml"))


@cache
def composed_keys(name: str, override: str | None = None) -> frozenset[str]:
    """Every key path of config `name` composed with one override (or none)."""
    with initialize_config_dir(str(CONFIGS), version_base=None):
        return frozenset(key_paths(compose(name, overrides=[override] if override else [])))


def composes(key: str) -> bool:
    """Whether `key` is in the train, evaluate, translate or align config as composed by
    default, or in the train config with some choice of a group of the key's own top level
    (`model.attention.half_width` with `model/attention=luong_local_p`), tried one at a time."""
    defaults = [
        ("train", None),
        *((name, "checkpoint=x") for name in ("evaluate", "translate", "align")),
    ]
    top = key.split(".")[0]
    groups = [top] + [f"{top}/{p.name}" for p in sorted((CONFIGS / top).glob("*/")) if p.is_dir()]
    choices = [("train", choice) for group in groups for choice in options(group)]
    return any(key in composed_keys(name, override) for name, override in [*defaults, *choices])


def key_paths(cfg: DictConfig) -> set[str]:
    container = OmegaConf.to_container(cfg, resolve=False)
    paths, todo = set(), [("", container)]
    while todo:
        prefix, node = todo.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                paths.add(prefix + str(key))
                todo.append((f"{prefix}{key}.", value))
    return paths


def named_keys() -> list[tuple[str, str]]:
    """Config keys named outside the Python examples (whose `data.batches` is an attribute)."""
    found = set()
    for doc in DOCS:
        for m in CONFIG_KEY.finditer(PYTHON_BLOCK.sub("", doc_text(doc))):
            if m.group(1).rsplit(".", 1)[1] not in FILE_SUFFIXES:
                found.add((doc.relative_to(ROOT).as_posix(), m.group(1)))
    return sorted(found)


@pytest.mark.parametrize(("doc", "key"), named_keys())
def test_every_config_key_the_docs_name_composes(doc, key):
    assert composes(key), f"{doc} names the config key {key}, which no config composes"
