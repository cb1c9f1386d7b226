"""A new attention variant is its module plus one file in configs/model/attention/: the
comparison, the study, `variant=<name>`, the tests' listings and the equation tests take it with
no other edit. The two files are the ones docs/attention.md shows under "Adding a variant"."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import pytest
import support
from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf
from test_attention_equations import build_decoder, check_weights_and_context, check_wiring

from seq2seq import variants
from seq2seq.models.rnn import attention as attention_package

NEW = "throwaway"
ADDING = "### Adding a variant"


def documented_files() -> dict[str, str]:
    """The module ("python") and config file ("yaml") of docs/attention.md's "Adding a variant",
    with <name> the new variant's."""
    page = (support.REPO / "docs" / "attention.md").read_text()
    section = page.partition(ADDING)[2].partition("\n### ")[0]
    blocks = dict(re.findall(r"```(python|yaml)\n(.*?)```", section, flags=re.DOTALL))
    assert blocks.keys() == {"python", "yaml"}, (
        f"docs/attention.md's '{ADDING}' shows the new module as a ```python block and its "
        "config file as a ```yaml block"
    )
    return {kind: text.replace("<name>", NEW) for kind, text in blocks.items()}


@pytest.fixture
def config_dir_with_a_new_variant(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A copy of configs/ with the documented config file added, the documented module in a
    folder the attention package imports from (as if it were seq2seq/models/rnn/attention/),
    and the `variant` nodes registered as seq2seq.train registers them. Nothing else changes."""
    files = documented_files()
    config_dir = tmp_path / "configs"
    shutil.copytree(support.CONFIG_DIR, config_dir)
    (config_dir / "model" / "attention" / f"{NEW}.yaml").write_text(files["yaml"])
    modules = tmp_path / "attention"
    modules.mkdir()
    (modules / f"{NEW}.py").write_text(files["python"])
    monkeypatch.setattr(attention_package, "__path__", [*attention_package.__path__, str(modules)])
    variants.register(config_dir)
    yield config_dir
    ConfigStore.instance().repo["variant"].pop(f"{NEW}.yaml")
    sys.modules.pop(f"{attention_package.__name__}.{NEW}", None)


def test_the_two_documented_files_pass_the_equation_tests_with_no_other_edit(
    config_dir_with_a_new_variant,
):
    """What tests/models/test_attention_equations.py runs for every attention file, run for the
    new one: it fails if a new variant needs an edit anywhere but its module and config file."""
    config_dir = config_dir_with_a_new_variant
    attention = build_decoder(NEW, config_dir=config_dir).attention
    assert type(attention).__module__ == f"seq2seq.models.rnn.attention.{NEW}"
    check_weights_and_context(attention)
    for input_feeding in (True, False):
        check_wiring(NEW, input_feeding, config_dir)


@pytest.mark.parametrize("experiment", ["compare_attention", "attention_study"])
def test_a_new_attention_file_joins_the_sweeps(config_dir_with_a_new_variant, experiment):
    config_dir = config_dir_with_a_new_variant
    jobs = support.sweep_points(experiment, config_dir=config_dir)
    swept = sorted({o.removeprefix("variant=") for job in jobs for o in job if "variant=" in o})
    assert swept == sorted([*variants.attention_names(support.CONFIG_DIR), NEW, "transformer"])
    budget = ["study_updates=10"] if experiment == "attention_study" else []
    cfg = support.compose_with_hydra(
        f"experiment={experiment}", f"variant={NEW}", *budget, config_dir=config_dir
    )
    written = OmegaConf.load(config_dir / "model" / "attention" / f"{NEW}.yaml")
    assert cfg.model.attention == written.attention
    assert cfg.hydra.sweep.subdir == f"{NEW}_seed{cfg.seed}"


def test_a_new_attention_file_is_listed_where_the_tests_list_the_variants(
    config_dir_with_a_new_variant,
):
    # tests/models/* (properties, equations, RNN), test_alignment, test_study and test_compare
    # parametrise over this listing
    assert NEW in variants.attention_names(config_dir_with_a_new_variant)
    assert variants.names(config_dir_with_a_new_variant)[-1] == "transformer"


def test_a_new_attention_file_is_a_row_of_the_docs_table(config_dir_with_a_new_variant):
    config_dir = config_dir_with_a_new_variant
    fields = variants.header(NEW, config_dir)
    assert fields.keys() == {"paper", "score"}
    row = f"| `model/attention={NEW}` | {fields['paper']} | {fields['score']} |"
    assert row in variants.table(config_dir)


def test_the_docs_table_is_the_attention_files_rows():
    page = (support.REPO / "docs" / "attention.md").read_text()
    assert variants.with_table(page) == page, (
        "docs/attention.md's variants table differs from configs/model/attention/*.yaml: "
        "run python -m seq2seq.variants --write docs/attention.md"
    )


def test_an_attention_file_without_its_row_is_named(tmp_path: Path):
    config_dir = tmp_path / "configs"
    (config_dir / "model" / "attention").mkdir(parents=True)
    (config_dir / "model" / "attention" / "bare.yaml").write_text("# @package model\n")
    with pytest.raises(ValueError, match=r"bare\.yaml needs a '# paper: \.\.\.' line"):
        variants.table(config_dir)
