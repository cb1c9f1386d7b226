"""A new attention variant is its module plus one file in configs/model/attention/: the
comparison, the study, `variant=<name>` and the tests' listings take it with no other edit."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import support
from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from seq2seq import variants


@pytest.fixture
def config_dir_with_a_new_variant(tmp_path: Path):
    """A copy of configs/ with one more attention file (Luong's general score under a new
    name), its `variant` nodes registered as seq2seq.train registers them."""
    config_dir = tmp_path / "configs"
    shutil.copytree(support.CONFIG_DIR, config_dir)
    attention = config_dir / "model" / "attention"
    shutil.copy(attention / "luong_general.yaml", attention / "throwaway.yaml")
    variants.register(config_dir)
    yield config_dir
    ConfigStore.instance().repo["variant"].pop("throwaway.yaml")


@pytest.mark.parametrize("experiment", ["compare_attention", "attention_study"])
def test_a_new_attention_file_joins_the_sweeps(config_dir_with_a_new_variant, experiment):
    config_dir = config_dir_with_a_new_variant
    jobs = support.sweep_points(experiment, config_dir)
    swept = sorted({o.removeprefix("variant=") for job in jobs for o in job if "variant=" in o})
    assert swept == sorted(
        [*variants.attention_names(support.CONFIG_DIR), "throwaway", "transformer"]
    )
    budget = ["study_updates=10"] if experiment == "attention_study" else []
    cfg = support.compose_with_hydra(
        f"experiment={experiment}", "variant=throwaway", *budget, config_dir=config_dir
    )
    general = OmegaConf.load(config_dir / "model" / "attention" / "luong_general.yaml")
    assert cfg.model.attention == general.attention
    assert cfg.hydra.sweep.subdir == f"throwaway_seed{cfg.seed}"


def test_a_new_attention_file_is_listed_where_the_tests_list_the_variants(
    config_dir_with_a_new_variant,
):
    # tests/models/* (properties, equations, RNN), test_alignment, test_study and test_compare
    # parametrise over this listing
    assert "throwaway" in variants.attention_names(config_dir_with_a_new_variant)
    assert variants.names(config_dir_with_a_new_variant)[-1] == "transformer"


def test_a_new_attention_file_is_a_row_of_the_docs_table(config_dir_with_a_new_variant):
    table = variants.table(config_dir_with_a_new_variant)
    general = variants.header("luong_general")
    assert f"| `model/attention=throwaway` | {general['paper']} | {general['score']} |" in table


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
