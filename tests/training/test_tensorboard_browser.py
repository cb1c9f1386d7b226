"""TensorBoard in a real browser: a finished two-run toy comparison served by `tensorboard
--logdir` and opened in headless Chromium (scripts/tensorboard_screenshots.py). Each test checks
a dashboard twice: TensorBoard's data endpoint behind it, and the page a user sees, whose
screenshot it keeps in the test's tmp directory. `make test-browser` installs Chromium and runs
these."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import tensorboard_screenshots as tb
from support import REPO

from seq2seq.training.run_logger import FINAL_GROUP

pytestmark = [pytest.mark.slow, pytest.mark.browser]

VARIANTS = ("bahdanau", "luong_general")
# TensorBoard's run names: <sweep subdir>/tensorboard/<variant>_seed<seed>
RUNS = [f"{variant}_seed1/tensorboard/{variant}_seed1" for variant in VARIANTS]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """`make compare`'s sweep (the toy copy task, tiny models), two variants, 60 updates."""
    root = tmp_path_factory.mktemp("compare")
    command = [sys.executable, "-m", "seq2seq.train", "-m", "experiment=compare_attention_smoke"]
    command += [f"variant={','.join(VARIANTS)}", f"hydra.sweep.dir={root / 'sweep'}"]
    command += ["trainer.max_updates=60", "trainer.validate_every=30", f"cache_dir={root}/cache"]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return root / "sweep"


@pytest.fixture(scope="module")
def board(sweep) -> Iterator[tb.TensorBoard]:
    with tb.serve(sweep, runs=len(RUNS)) as board:
        yield board


@pytest.fixture(scope="module")
def browser(tmp_path_factory) -> Iterator[object]:
    with tb.chromium() as browser:
        yield browser


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> Path:
    """Where the screenshots go: $SEQ2SEQ_SCREENSHOTS, else the test's tmp directory."""
    if "SEQ2SEQ_SCREENSHOTS" in os.environ:
        folder = Path(os.environ["SEQ2SEQ_SCREENSHOTS"])
        folder.mkdir(parents=True, exist_ok=True)
        return folder
    return tmp_path_factory.mktemp("screenshots")


def show(browser, board, screenshots: Path, dashboard: str) -> str:
    """Open `dashboard` until it shows what it must; keep its screenshot; the page's text."""
    text = tb.open_dashboard(browser, board, dashboard, tb.expectations(VARIANTS)[dashboard])
    browser.save_screenshot(str(screenshots / f"tensorboard_{dashboard}.png"))
    return text


def test_scalars_lead_with_the_training_and_validation_curves_of_every_run(
    board, browser, screenshots
):
    tags = board.get("data/plugin/scalars/tags")
    assert sorted(tags) == RUNS
    for run in RUNS:
        assert {"train/loss", "train/lr", "validation/loss", "validation/bleu"} <= set(tags[run])
        assert f"{FINAL_GROUP}/best_validation_bleu" in tags[run]
        losses = board.get(f"data/plugin/scalars/scalars?run={run}&tag=train/loss")
        assert [step for _, step, _ in losses] == list(range(1, 61))
        bleu = board.get(f"data/plugin/scalars/scalars?run={run}&tag=validation/bleu")
        assert [step for _, step, _ in bleu] == [30, 60]
    text = show(browser, board, screenshots, "scalars")
    lines = text.splitlines()
    groups = [line for line in lines if line in ("train", "validation", FINAL_GROUP)]
    assert groups[:3] == ["train", "validation", FINAL_GROUP], groups
    assert all(run in lines for run in RUNS)  # the run selector lists both


def test_images_show_the_labelled_attention_heatmaps(board, browser, screenshots):
    tags = board.get("data/plugin/images/tags")
    for run in RUNS:
        assert {"attention/0", "attention/1"} <= set(tags[run])
    text = show(browser, board, screenshots, "images")
    assert text.count("attention/0") >= len(RUNS)
    pictures = tb.loaded_images(browser)
    # one heatmap per run and example, each a real picture (matplotlib's, hundreds of pixels)
    heatmaps = [size for size in pictures if min(size) > 100]
    assert len(heatmaps) >= len(RUNS), pictures


def test_text_shows_example_translations_and_the_results_table(board, browser, screenshots):
    tags = board.get("data/plugin/text/tags")
    for run in RUNS:
        # torch's add_text appends /text_summary to the tag
        assert {"examples/0/text_summary", "results/text_summary"} <= set(tags[run])
    text = show(browser, board, screenshots, "text")
    assert text.count("source:") >= len(RUNS) and text.count("translation:") >= len(RUNS)


def test_hparams_show_a_row_per_run_with_its_variant_and_final_bleu(
    sweep, board, browser, screenshots
):
    experiment = board.post("data/plugin/hparams/experiment", {"experimentName": ""})
    columns = [info["name"] for info in experiment["hparamInfos"]]
    assert columns[:3] == ["Data", "Seed", "Variant"]  # the dashboard shows the first five
    metrics = [info["name"]["tag"] for info in experiment["metricInfos"]]
    assert metrics[0] == f"{FINAL_GROUP}/best_validation_bleu"
    text = show(browser, board, screenshots, "hparams").splitlines()
    # the table: its header, then per run its name and one cell per column (4 decimals)
    table = text[text.index("Trial ID") :]
    header = [cell for cell in table[: table.index(RUNS[0])] if cell != "Show Metrics"]
    assert header[:4] == ["Trial ID", "Data", "Seed", "Variant"]
    bleu = header.index(f"{FINAL_GROUP}/best_validation_bleu")
    for run, variant in zip(RUNS, VARIANTS, strict=True):
        row = table[table.index(run) :][: len(header)]
        record = json.loads((sweep / f"{variant}_seed1" / "metrics.json").read_text())
        best = max(v["bleu"] for v in record["validations"])
        assert row[1:4] == ["toy_copy src-tgt", "1.0000", variant]
        assert float(row[bleu]) == pytest.approx(best, abs=5e-5)
