"""What a run records for people: TensorBoard events and the attention of a few fixed sentences.

In `<run dir>/tensorboard/<name>/`, `<name>` being e.g. `bahdanau_seed1` (so that
`tensorboard --logdir <sweep dir or runs/>` shows every run under its variant and seed):
- scalars `train/{loss,ppl,lr,grad_norm,tgt_tokens_per_s}` every update and
  `validation/{loss,ppl,bleu,chrf,...}` every validation;
- for the first `examples` validation sentences, at every validation: text `examples/<i>`
  (source, reference, current translation) and image `attention/<i>` (heatmap; with
  `attention_heads`, also `attention_heads/<i>/<head>` for models with heads);
- once, at the end: the run's single-value results (best validation BLEU, test BLEU and chrF
  per search, minutes, tokens/s, parameters) as the metrics of its HParams row, next to its
  variant, seed, data and the settings given on the command line, so the HParams dashboard
  sorts and filters the runs of a sweep side by side; and the same results as a table in text
  `results`.

TensorBoard lists tag groups and HParams columns by name. HParams reads a metric from the
run's scalars, so the results are scalars too, in group `z_final`, which sorts after the
`train` and `validation` curves instead of leading the Scalars dashboard with charts of one
point. The HParams columns `Data`, `Seed` and `Variant` are capitalised so that they sort
before the lower-case config keys: the dashboard shows the first five columns.

In the run directory: `attention.json`, the fixed sentences translated by the best model, which
`python -m seq2seq.compare` draws side by side for every variant.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams

from seq2seq import plots
from seq2seq.data import PreparedData
from seq2seq.evaluation import write_json
from seq2seq.inference import Translator
from seq2seq.models.interface import Seq2SeqModel
from seq2seq.training.examples import AttentionExamples, Example

TENSORBOARD_DIR = "tensorboard"
ATTENTION_FILE = "attention.json"
FINAL_GROUP = "z_final"


class RunLogger:
    """TensorBoard logging of one run, and its `attention.json`.

    The writer opens on first use, so runs that never log (rank > 0, dry runs) leave no files.
    Fixed examples need the prepared `data` and the validation `translator` (run-time values,
    passed at the instantiate call); without them only scalars are written. `name` (e.g.
    `bahdanau_seed1`), when given, is the subdirectory of `tensorboard/` the events go to, and
    so the run's name in TensorBoard; `overrides`, the run's command-line overrides, become
    HParams columns.
    """

    def __init__(
        self,
        run_dir: Path,
        enabled: bool = True,
        examples: int = 3,
        attention_heads: bool = False,
        data: PreparedData | None = None,
        translator: Translator | None = None,
        name: str | None = None,
        overrides: Sequence[str] = (),
    ) -> None:
        self.run_dir = Path(run_dir)
        self.log_dir = self.run_dir / TENSORBOARD_DIR / (name or "")
        self.overrides = list(overrides)
        self.enabled = enabled
        self.attention_examples = None
        if enabled and data is not None and translator is not None and examples != 0:
            self.attention_examples = AttentionExamples(data, translator, examples, attention_heads)
        self._writer: SummaryWriter | None = None
        self._purge_step: int | None = None

    @property
    def writer(self) -> SummaryWriter:
        if self._writer is None:
            self._writer = SummaryWriter(log_dir=str(self.log_dir), purge_step=self._purge_step)
        return self._writer

    def continue_after(self, update: int) -> None:
        """A resumed run: TensorBoard drops the events a killed run logged after `update` (its
        checkpoint's), so the continued curve has no step twice."""
        self._purge_step = update + 1

    def train_update(self, update: int, stats: Any, lr: float) -> None:
        """`train/ppl` is exp of the training loss, which is label-smoothed when
        trainer.label_smoothing > 0 and then lies above the true perplexity; `validation/ppl`
        is the unsmoothed one."""
        if not self.enabled:
            return
        w = self.writer
        w.add_scalar("train/loss", stats.loss, update)
        w.add_scalar("train/ppl", _exp(stats.loss), update)
        w.add_scalar("train/lr", lr, update)
        w.add_scalar("train/grad_norm", stats.grad_norm, update)
        w.add_scalar("train/tgt_tokens_per_s", stats.tgt_tokens / stats.seconds, update)

    def validation(self, update: int, result: Any, model: Seq2SeqModel | None = None) -> None:
        """Validation scalars, and with `model` the fixed examples' translations and attention."""
        if not self.enabled:
            return
        for name, value in result.metrics.items():
            self.writer.add_scalar(f"validation/{name}", value, update)
        if model is not None and self.attention_examples is not None:
            for i, example in enumerate(self.attention_examples(model)):
                self._log_example(i, example, update)

    def finish(self, model: Seq2SeqModel, metrics: Mapping[str, Any]) -> None:
        """End of run, `model` being the one tested: write attention.json and the HParams
        summary (config and final metrics from the run's metrics.json), then close."""
        if not self.enabled:
            return
        if self.attention_examples is not None:
            examples = [example.to_json() for example in self.attention_examples(model)]
            record = {"variant": metrics["variant"], "seed": metrics["seed"], "examples": examples}
            write_json(self.run_dir / ATTENTION_FILE, record)
        self._log_hparams(metrics)
        self.close()

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _log_example(self, i: int, example: Example, update: int) -> None:
        text = (
            f"**source:** {_markdown(example.sentence)}  \n"
            f"**reference:** {_markdown(example.reference)}  \n"
            f"**translation:** {_markdown(example.translation)}"
        )
        self.writer.add_text(f"examples/{i}", text, update)
        title = f"update {update}"
        figure = plots.attention_figure(example.weights, example.source, example.target, title)
        self.writer.add_image(
            f"attention/{i}", plots.to_rgb_array(figure), update, dataformats="HWC"
        )
        for head, weights in enumerate(example.heads or []):
            figure = plots.attention_figure(weights, example.source, example.target, title)
            image = plots.to_rgb_array(figure)
            self.writer.add_image(f"attention_heads/{i}/{head}", image, update, dataformats="HWC")

    def _log_hparams(self, metrics: Mapping[str, Any]) -> None:
        """The HParams row: the run's session summaries and an experiment summary naming its
        columns and metrics. TensorBoard shows the columns of the first experiment summary it
        reads, so every run of a sweep lists the same ones: Variant, Seed, Data and the keys
        set on the sweep's command line; the metrics are the single-value results alone
        (without an experiment summary every scalar of the run would be a metric, and the
        dashboard shows the first five by name: `train/*`)."""
        final = final_metrics(metrics)
        step = int(metrics["train"]["updates"])
        for name, value in final.items():
            self.writer.add_scalar(name, value, step)
        self.writer.add_text("results", _results_table(final), step)
        columns = hyper_parameters(metrics, self.overrides)
        for summary in hparams(columns, final):
            self.writer.file_writer.add_summary(summary)


def hyper_parameters(
    metrics: Mapping[str, Any], overrides: Sequence[str] = ()
) -> dict[str, str | int | float | bool]:
    """The run's HParams columns: its variant, seed and data pair, then each key of the
    command-line `overrides` (`optim.lr=1e-3`, `model/attention=luong_dot`) with its value in
    the run's resolved config (or, for a config group, the option chosen). Lists and nulls
    become strings, the only other types HParams takes being numbers and booleans."""
    data = metrics["config"]["data"]
    columns: dict[str, Any] = {
        "Variant": metrics["variant"],
        "Seed": metrics["seed"],
        "Data": f"{data['name']} {data['src_lang']}-{data['tgt_lang']}",
    }
    config = OmegaConf.create(metrics["config"])
    for override in overrides:
        key, _, chosen = override.lstrip("+~").partition("=")
        if key.startswith("hydra.") or key in ("variant", "seed"):
            continue  # Hydra's own settings, or a column above
        columns[key] = _column_value(OmegaConf.select(config, key, default=chosen), chosen)
    return columns


def _column_value(value: Any, chosen: str) -> str | int | float | bool:
    """A config value as HParams takes it; for a config group (`model=rnn`) the option."""
    if isinstance(value, DictConfig):
        return chosen
    if isinstance(value, ListConfig):
        return json.dumps(OmegaConf.to_container(value))
    return json.dumps(value) if value is None else value


def final_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Scalars `z_final/*` from a run's metrics.json: what the HParams table sorts by."""
    train = metrics["train"]
    bleus = [v["bleu"] for v in metrics["validations"]]
    final = {f"{FINAL_GROUP}/best_validation_bleu": max(bleus) if bleus else math.nan}
    for search, result in metrics["test"].items():
        final[f"{FINAL_GROUP}/test_bleu_{search}"] = result["bleu"]
    for search, result in metrics["test"].items():
        final[f"{FINAL_GROUP}/test_chrf_{search}"] = result["chrf"]
    final[f"{FINAL_GROUP}/train_minutes"] = train["seconds"] / 60
    final[f"{FINAL_GROUP}/tgt_tokens_per_second"] = train["tgt_tokens_per_second"]
    final[f"{FINAL_GROUP}/parameters"] = float(metrics["parameters"])
    return final


def _results_table(final: Mapping[str, float]) -> str:
    """The final results as a markdown table, for the Text dashboard."""
    rows = [f"| {name.split('/', 1)[1]} | {value:,.2f} |" for name, value in final.items()]
    return "\n".join(["| result | value |", "| --- | ---: |", *rows])


def _exp(loss: float) -> float:
    return math.exp(loss) if loss < 700 else math.inf  # math.exp overflows past ~709


def _markdown(text: str) -> str:
    """Plain text shown literally by TensorBoard's markdown renderer."""
    return "".join(f"\\{c}" if c in "\\`*_[]<>|#" else c for c in text)
