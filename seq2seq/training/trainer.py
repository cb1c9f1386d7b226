"""The training loop. It knows the step-wise model interface and `Batch`, nothing of model types."""

from __future__ import annotations

import logging
import math
import signal
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import torch
import torch.nn.functional as F
from torch.optim.lr_scheduler import ReduceLROnPlateau
from tqdm.auto import tqdm

from seq2seq import checkpoint as ckpt
from seq2seq import runtime
from seq2seq.data.batch import Batch
from seq2seq.inference import ValidationResult, Validator
from seq2seq.interrupts import Interrupted, StopRequests
from seq2seq.models.interface import Seq2SeqModel
from seq2seq.training import schedules
from seq2seq.training.distributed import MicroStep, World, gradient_sync
from seq2seq.training.run_dir import restart_command, resume_command
from seq2seq.training.run_logger import RunLogger

log = logging.getLogger(__name__)

HIGHER_IS_BETTER = {"bleu": True, "chrf": True, "loss": False, "ppl": False}
MEDIAN_WINDOW = 100  # recent updates whose median training loss an exploding loss is judged by


class DivergenceError(FloatingPointError):
    """Training diverged: non-finite losses in a row, an exploding loss or an infinite
    validation perplexity. No checkpoint holds the diverged weights."""


@dataclass
class Progress:
    """Where training stands: enough to continue a killed run exactly where it was."""

    update: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0  # micro-batches of `epoch` already consumed
    train_seconds: float = 0.0  # wall clock of training, validation included (the budget's clock)
    update_seconds: float = 0.0  # of the updates alone: what throughput is measured against
    tgt_tokens: int = 0
    best_metric: float | None = None
    best_update: int = 0
    bad_validations: int = 0
    skipped_updates: int = 0  # not applied: non-finite loss or gradient
    losses: list[float] = field(default_factory=list)  # training loss of every update
    validations: list[dict[str, float]] = field(default_factory=list)
    stop_reason: str = ""


@dataclass
class UpdateStats:
    loss: float
    tgt_tokens: int
    grad_norm: float
    seconds: float


class Trainer:
    """Teacher-forced cross-entropy training with validation, early stopping and checkpoints."""

    def __init__(  # noqa: PLR0913 - every argument is a documented config key
        self,
        *,
        model: Seq2SeqModel,
        optimizer: torch.optim.Optimizer,
        scheduler: Any,
        data: Any,
        run_dir: Path,
        checkpoint_extras: dict[str, Any],
        validator: Validator,
        device: torch.device,
        max_epochs: int = 30,
        max_updates: int | None = None,
        max_minutes: float | None = None,
        validate_every: int = 1000,
        checkpoint_every: int = 200,
        keep_last: int = 0,
        keep_best: int = 0,
        log_every: int = 50,
        early_stopping_metric: str = "bleu",
        patience: int | None = 5,
        label_smoothing: float = 0.1,
        clip_grad_norm: float | None = 1.0,
        max_nonfinite_updates: int = 5,
        loss_explosion_factor: float | None = 100.0,
        accumulate_grad: int = 1,
        num_threads: int = 2,
        precision: str = "auto",
        progress: bool = True,
        resume: str | dict[str, Any] | None = None,
        logger: RunLogger | None = None,
        world: World | None = None,
    ) -> None:
        if early_stopping_metric not in HIGHER_IS_BETTER:
            raise ValueError(
                f"trainer.early_stopping_metric must be one of {sorted(HIGHER_IS_BETTER)}, "
                f"got {early_stopping_metric!r}"
            )
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.data, self.validator, self.device = data, validator, device
        self.run_dir, self.checkpoint_extras = Path(run_dir), checkpoint_extras
        self.max_epochs, self.max_updates, self.max_minutes = max_epochs, max_updates, max_minutes
        self.validate_every, self.checkpoint_every = validate_every, checkpoint_every
        self.keep_last, self.keep_best = keep_last, keep_best
        self.log_every, self.show_progress = log_every, progress
        self.metric, self.patience = early_stopping_metric, patience
        self.label_smoothing, self.clip_grad_norm = label_smoothing, clip_grad_norm
        self.accumulate_grad = accumulate_grad
        self.max_nonfinite_updates = max_nonfinite_updates
        self.explosion_factor = loss_explosion_factor
        self._nonfinite_in_a_row = 0
        # a due checkpoint waits for the next update's loss to show its weights are sane
        self._pending_save: dict[str, Any] | None = None
        self._sane_checkpoint: tuple[Path, int] | None = None  # newest written, and its update
        self._stop, self._signum = StopRequests(), 0
        self.world = world or World(device=device)
        self.train_model: torch.nn.Module = model  # wrapped for data parallelism in fit()
        self.precision = runtime.resolve_precision(precision, device)
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.precision == "fp16")
        self.logger = logger or RunLogger(self.run_dir, enabled=self.world.is_main)
        self.progress = Progress()
        self._check_plateau_mode()
        runtime.configure_cpu(device, num_threads)
        if isinstance(resume, dict):  # read already (by the entry point)
            self.restore(resume)
        elif resume:  # rank 0 reads it: other nodes need not see the file
            self.restore(self.world.from_main(lambda: ckpt.load_checkpoint(resume)))

    # ------------------------------------------------------------------ public

    def fit(self) -> Progress:
        """Train until max_epochs / max_updates / max_minutes or early stopping; on SIGINT or
        SIGTERM save last.pt after the update in progress and raise Interrupted."""
        self.model.to(self.device)
        self.train_model = self.world.wrap(self.model)
        log.info(
            "training %s parameters on %s (%s)", _count(self.model), self.device, self.precision
        )
        with self._stop:
            while not self.progress.stop_reason:
                self._run_epoch()
        if self._signum:
            self._save_interrupted()
        log.info("stopped: %s", self.progress.stop_reason)
        if not self._validated_last_update():  # a budget ended the run between validations
            self._validate()
        self.save(ckpt.LAST)
        self.logger.flush()
        return self.progress

    def save(self, name: str, state: dict[str, Any] | None = None) -> Path:
        """Write the training state (with `state`'s progress and rng, those of an earlier update
        of the same weights, in place of the current ones) to checkpoints/`name`."""
        path = self.run_dir / ckpt.CHECKPOINT_DIR / name
        if not self.world.is_main:
            return path
        state = state or self._position()
        payload = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            **state,
            **self.checkpoint_extras,
        }
        ckpt.save_checkpoint(payload, path)
        if name == ckpt.LAST:
            self._sane_checkpoint = (path, state["progress"]["update"])
            self.logger.flush()  # the events of what the checkpoint holds are on disk with it
        return path

    def restore(self, payload: dict[str, Any]) -> None:
        ckpt.require_training_state(payload)
        try:
            self.model.load_state_dict(payload["model"])
        except RuntimeError as err:
            raise ckpt.CheckpointError(
                f"checkpoint {payload['path']} does not fit the configured model "
                f"(was `model` changed since it was written?): {err}"
            ) from err
        lr = self.optimizer.defaults["lr"]  # the configured one, which load_state_dict replaces
        self.optimizer.load_state_dict(payload["optimizer"])
        self.scheduler.load_state_dict(payload["scheduler"])
        saved_lr = payload["config"]["optim"]["lr"]
        if lr != saved_lr:  # changed on resume: the schedule goes on at the new scale
            schedules.rescale(self.optimizer, self.scheduler, lr / saved_lr)
        self.scaler.load_state_dict(payload["scaler"])
        runtime.set_rng_state(payload["rng"])
        self.progress = Progress(**payload["progress"])
        self.progress.stop_reason = ""
        self._sane_checkpoint = (Path(payload["path"]), self.progress.update)
        self.logger.continue_after(self.progress.update)
        log.info(
            "resumed from %s at update %d (epoch %d, batch %d)",
            payload["path"],
            self.progress.update,
            self.progress.epoch,
            self.progress.batch_in_epoch,
        )

    # ------------------------------------------------------------------ epoch and update

    def _run_epoch(self) -> None:
        p = self.progress
        if p.epoch >= self.max_epochs:
            p.stop_reason = f"reached trainer.max_epochs={self.max_epochs}"
            return
        batches = self.data.batches("train", epoch=p.epoch)
        bar = tqdm(
            total=len(batches),
            initial=p.batch_in_epoch,
            desc=f"epoch {p.epoch + 1}",
            disable=None if self.show_progress else True,  # None: a bar on a terminal only
            leave=False,
        )
        while p.batch_in_epoch < len(batches) and not p.stop_reason:
            # every rank takes its share of the same group of global micro-batches
            size = self.accumulate_grad * self.world.size
            group = batches[p.batch_in_epoch : p.batch_in_epoch + size]
            stats = self._update(group)
            p.batch_in_epoch += len(group)
            bar.update(len(group))
            if stats is not None:
                self._after_update(stats, bar)
            if self._poll_interrupt():
                p.stop_reason = p.stop_reason or f"interrupted by {self._signal_name()}"
        bar.close()
        if p.batch_in_epoch >= len(batches):
            p.epoch, p.batch_in_epoch = p.epoch + 1, 0
            if p.update % self.validate_every != 0:  # not validated at this very update already
                self._validate()

    def _update(self, group: list[Batch]) -> UpdateStats | None:
        """One optimizer update over `group`, or None where it was not applied (skipped)."""
        start = time.perf_counter()
        self.model.train()
        tgt_tokens = sum(b.num_tgt_tokens for b in group)  # of the whole group, on every rank
        loss_sum = sum(self._backward(s, tgt_tokens) for s in self.world.micro_steps(group))
        loss = self.world.sum(loss_sum) / tgt_tokens  # summed first, so every rank sees a NaN
        self.scaler.unscale_(self.optimizer)
        max_norm = self.clip_grad_norm if self.clip_grad_norm is not None else math.inf
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm))
        applied = self._may_apply(loss, grad_norm)
        if applied:
            if self._pending_save is not None:  # its weights have just given a sane loss
                writing = time.perf_counter()
                self.save(ckpt.LAST, self._pending_save)
                start += time.perf_counter() - writing  # writing is not the update's time
            self.scaler.step(self.optimizer)
        self._pending_save = None
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        if not applied:
            return None
        if not isinstance(self.scheduler, ReduceLROnPlateau):
            self.scheduler.step()
        seconds = self.world.max(time.perf_counter() - start)  # the same on every rank
        return UpdateStats(loss, tgt_tokens, grad_norm, seconds)

    def _may_apply(self, loss: float, grad_norm: float) -> bool:
        """Whether an update with this loss and gradient norm may be applied. A non-finite one
        is skipped (the batch is spent, the weights stay); `max_nonfinite_updates` of them in a
        row, or a loss exploding against the recent median, stop the run (DivergenceError)."""
        p = self.progress
        if math.isfinite(loss) and math.isfinite(grad_norm):
            self._nonfinite_in_a_row = 0
            self._check_explosion(loss)
            return True
        if self.scaler.is_enabled() and math.isfinite(loss):
            return False  # fp16 gradient overflow: the scaler lowers its scale, by design
        self._nonfinite_in_a_row += 1
        p.skipped_updates += 1
        what = f"loss {loss}" if not math.isfinite(loss) else f"gradient norm {grad_norm}"
        log.warning(
            "update %d skipped: %s (%d in a row)", p.update + 1, what, self._nonfinite_in_a_row
        )
        if self._nonfinite_in_a_row >= self.max_nonfinite_updates:
            self._diverged(
                f"{self._nonfinite_in_a_row} updates in a row had a non-finite loss or gradient "
                f"(trainer.max_nonfinite_updates={self.max_nonfinite_updates}; the last: {what})"
            )
        return False

    def _check_explosion(self, loss: float) -> None:
        """A loss over `loss_explosion_factor` times the median of recent updates, and above
        the run's first (untrained) loss, is a divergence, not a hard batch."""
        p = self.progress
        if self.explosion_factor is None or not p.losses:
            return
        recent = p.losses[-MEDIAN_WINDOW:]
        median = statistics.median(recent)
        if loss > self.explosion_factor * median and loss > p.losses[0]:
            self._diverged(
                f"loss {loss:.4g} is over trainer.loss_explosion_factor={self.explosion_factor:g}"
                f" times the median {median:.4g} of the last {len(recent)} updates"
            )

    def _backward(self, step: MicroStep, normaliser: int) -> torch.Tensor:
        """Back-propagate one micro-batch's share of the token-averaged loss; return its sum."""
        batch = step.batch.to(self.device)
        # DDP decides in the forward whether the backward all-reduces gradients
        with (
            gradient_sync(self.train_model, step.sync),
            runtime.autocast(self.device, self.precision),
        ):
            # only the real target positions are scored: padding would cost as much
            scored = batch.tgt_out != self.model.pad_id  # (B, T)
            logits = self.train_model(
                batch.src, batch.src_lengths, batch.tgt_in, positions=scored
            ).logits  # (N, V)
        loss = F.cross_entropy(
            logits.float(),
            batch.tgt_out[scored],
            label_smoothing=self.label_smoothing,
            reduction="sum",
        )
        self.scaler.scale(loss * step.weight / normaliser).backward()
        return loss.detach() * step.weight

    def _after_update(self, stats: UpdateStats, bar: tqdm) -> None:
        p = self.progress
        p.update += 1
        p.train_seconds += stats.seconds
        p.update_seconds += stats.seconds
        p.tgt_tokens += stats.tgt_tokens
        p.losses.append(stats.loss)
        bar.set_postfix(loss=f"{stats.loss:.3f}", refresh=False)
        self.logger.train_update(p.update, stats, self._lr())
        if p.update % self.log_every == 0:
            log.info(
                "epoch %d update %d | loss %.4f | lr %.2e | %.0f tgt tok/s | grad norm %.2f",
                p.epoch + 1,
                p.update,
                stats.loss,
                self._lr(),
                stats.tgt_tokens / stats.seconds,
                stats.grad_norm,
            )
        if p.update % self.validate_every == 0:
            self._validate()
        elif p.update % self.checkpoint_every == 0:
            self._pending_save = self._position()  # written once the next loss proves it sane
        self._check_budget()

    def _check_budget(self) -> None:
        p = self.progress
        if self.max_updates is not None and p.update >= self.max_updates:
            p.stop_reason = p.stop_reason or f"reached trainer.max_updates={self.max_updates}"
        if self.max_minutes is not None and p.train_seconds >= 60 * self.max_minutes:
            p.stop_reason = p.stop_reason or f"reached trainer.max_minutes={self.max_minutes}"

    # ------------------------------------------------------------------ validation

    def _validate(self) -> None:
        p = self.progress
        # rank 0 decodes; every rank gets its scores, so all take the same early-stopping decision
        result, seconds = self.world.from_main(self._timed_validation)
        p.train_seconds += seconds  # a wall-clock budget includes validation
        if not math.isfinite(result.metrics["ppl"]):
            self._diverged(
                f"validation perplexity is {result.metrics['ppl']} "
                f"(loss {result.metrics['loss']:.4g})",
                update=p.update,
            )
        metrics = {**result.metrics, "update": p.update, "epoch": p.epoch, "time": p.train_seconds}
        p.validations.append(metrics)
        improved = self._is_improvement(result.metrics[self.metric])
        if isinstance(self.scheduler, ReduceLROnPlateau):
            self.scheduler.step(result.metrics[self.metric])
        self.logger.validation(p.update, result, self.model)
        log.info(
            "validation at update %d: loss %.4f | ppl %.2f | BLEU %.2f | chrF %.2f"
            " | exact match %.1f%%%s",
            p.update,
            result.metrics["loss"],
            result.metrics["ppl"],
            result.metrics["bleu"],
            result.metrics["chrf"],
            result.metrics["exact_match"],
            " | new best" if improved else "",
        )
        self.save(ckpt.LAST)
        if improved:
            self.save(ckpt.BEST)
        if self.keep_last or self.keep_best:
            self._save_numbered()

    def _save_numbered(self) -> None:
        """This validation's weights as checkpoints/update_<n>.pt, keeping the latest
        `keep_last` and the best `keep_best` of them, for checkpoint averaging."""
        if not self.world.is_main:
            return
        p = self.progress
        directory = self.run_dir / ckpt.CHECKPOINT_DIR
        payload = {
            "model": self.model.state_dict(),
            "progress": asdict(p),
            **self.checkpoint_extras,
        }
        ckpt.save_checkpoint(payload, directory / ckpt.numbered_name(p.update))
        ckpt.prune_numbered(
            directory,
            {int(v["update"]): v[self.metric] for v in p.validations},
            keep_last=self.keep_last,
            keep_best=self.keep_best,
            higher_is_better=HIGHER_IS_BETTER[self.metric],
        )

    def _validated_last_update(self) -> bool:
        p = self.progress
        return bool(p.validations) and p.validations[-1]["update"] == p.update

    def _timed_validation(self) -> tuple[ValidationResult, float]:
        start = time.perf_counter()
        result = self.validator.run(self.model, "validation", progress=self.show_progress)
        return result, time.perf_counter() - start

    def _is_improvement(self, value: float) -> bool:
        p = self.progress
        higher = HIGHER_IS_BETTER[self.metric]
        better = p.best_metric is None or (
            value > p.best_metric if higher else value < p.best_metric
        )
        if better:
            p.best_metric, p.best_update, p.bad_validations = value, p.update, 0
            return True
        p.bad_validations += 1
        if self.patience is not None and p.bad_validations >= self.patience:
            p.stop_reason = (
                f"early stopping: validation {self.metric} did not improve for "
                f"{self.patience} validations (best {p.best_metric:.4f} at update {p.best_update})"
            )
        return False

    # ------------------------------------------------------------------ helpers

    def _diverged(self, reason: str, update: int | None = None) -> NoReturn:
        p = self.progress
        update = p.update + 1 if update is None else update
        lower = f"optim.lr={self.optimizer.defaults['lr'] / 10:.3g}"
        if self._sane_checkpoint is None:
            advice = "no checkpoint was written; start again with a lower learning rate: "
            advice += restart_command(lower)
        else:
            path, saved = self._sane_checkpoint
            ours = path == self.run_dir / ckpt.CHECKPOINT_DIR / ckpt.LAST
            advice = (
                f"the newest checkpoint with finite weights and a sane loss is {path} (update "
                f"{saved}); continue from it with a lower learning rate: "
                + resume_command(self.run_dir if ours else path, lower)
            )
        raise DivergenceError(
            f"training diverged at update {update} (epoch {p.epoch + 1}): {reason}; training "
            f"stopped and no checkpoint holds the diverged weights; {advice}"
        )

    def _poll_interrupt(self) -> bool:
        """Whether a signal asked to stop; on several processes, whether one got it, so that
        all stop after the same update."""
        signum = self._stop.signum or 0
        if self.world.size > 1:
            signum = int(self.world.max(float(signum)))
        self._signum = signum
        return signum != 0

    def _signal_name(self) -> str:
        return signal.Signals(self._signum).name

    def _save_interrupted(self) -> NoReturn:
        p = self.progress
        weights = self.model.state_dict().values()
        if all(torch.isfinite(t).all() for t in weights if t.is_floating_point()):
            saved = f"saved {self.save(ckpt.LAST)} at update {p.update}"
        else:
            saved = "the weights are not finite and were not saved"
        self.logger.flush()
        raise Interrupted(
            self._signum,
            f"interrupted by {self._signal_name()}: {saved}; continue with: "
            + resume_command(self.run_dir),
        )

    def _position(self) -> dict[str, Any]:
        """Where training stands now, besides the weights and optimizer: progress and rng."""
        return {"progress": asdict(self.progress), "rng": runtime.rng_state()}

    def _check_plateau_mode(self) -> None:
        if isinstance(self.scheduler, ReduceLROnPlateau):
            wanted = "max" if HIGHER_IS_BETTER[self.metric] else "min"
            if self.scheduler.mode != wanted:
                raise ValueError(
                    f"scheduler.mode must be {wanted!r} for trainer.early_stopping_metric="
                    f"{self.metric}, got {self.scheduler.mode!r}"
                )

    def _lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]


def _count(model: torch.nn.Module) -> str:
    return f"{sum(p.numel() for p in model.parameters()):,}"
