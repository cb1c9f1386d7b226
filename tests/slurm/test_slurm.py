"""The Slurm launch paths against a real one-node Slurm (scripts/local_slurm.sh): a Hydra sweep
through the submitit launcher, scripts/slurm_ddp.sbatch with two CPU processes, and a requeued
job that continues from its checkpoint. `make test-slurm` runs them (a few minutes on 2 cores).
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from support import REPO

pytestmark = [pytest.mark.slow, pytest.mark.slurm]

SCRIPT = REPO / "scripts" / "local_slurm.sh"
SBATCH = REPO / "scripts" / "slurm_ddp.sbatch"
# the comparison smoke test's tiny RNNs on the toy copy task: seconds per run
TOY = (
    "experiment=compare_attention_smoke",
    "data.source.train_size=600",
    "trainer.validate_every=1000",
    "device=cpu",
)


def run(command: list[str], env: dict[str, str], timeout: float = 600) -> str:
    """`command` run in the repository root; its output, or the test fails showing it."""
    done = subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        pytest.fail(f"{' '.join(command)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done.stdout


@pytest.fixture(scope="module")
def slurm(tmp_path_factory) -> Iterator[dict[str, str]]:
    """A started cluster: the environment that reaches it (SLURM_CONF). Afterwards the cluster
    is stopped and none of the daemons that start left may still run."""
    state = tmp_path_factory.mktemp("slurm")
    run(["bash", str(SCRIPT), "start", str(state)], dict(os.environ), timeout=900)
    daemons = {p.stem: int(p.read_text()) for p in state.glob("*.started")}
    assert sorted(daemons) == ["munged", "slurmctld", "slurmd"]
    yield {**os.environ, "SLURM_CONF": str(state / "slurm.conf")}
    run(["bash", str(SCRIPT), "stop", str(state)], dict(os.environ))
    alive = [name for name, pid in daemons.items() if Path(f"/proc/{pid}").exists()]
    assert not alive, f"still running after stop: {alive}"


def test_a_sweep_through_the_submitit_launcher_runs_on_slurm(slurm, tmp_path):
    sweep = tmp_path / "sweep"
    run(
        [
            sys.executable,
            "-m",
            "seq2seq.train",
            "-m",
            "hydra/launcher=slurm_cpu",
            "hydra.launcher.cpus_per_task=1",
            "hydra.launcher.mem_gb=1",
            f"hydra.sweep.dir={sweep}",
            *TOY,
            "variant=bahdanau,luong_dot",
            "trainer.max_updates=20",
            f"cache_dir={tmp_path / 'cache'}",
        ],
        slurm,
    )
    # each point ran as a task of one Slurm job array: submitit's logs are per array task
    logs = [p for p in (sweep / ".submitit").glob("*_*") if p.is_dir()]
    array_tasks = sorted(p.name.split("_", 1)[1] for p in logs)
    assert array_tasks == ["0", "1"]
    run([sys.executable, "-m", "seq2seq.compare", str(sweep)], slurm)
    with (sweep / "runs.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert sorted(row["variant"] for row in rows) == ["bahdanau", "luong_dot"]
    assert all(float(row["test_bleu_greedy"]) >= 0 for row in rows)


def sbatch(slurm: dict[str, str], run_dir: Path, processes: int, *args: str) -> str:
    """Submit slurm_ddp.sbatch with `processes` CPU processes writing `run_dir`; its job id.
    `args`: sbatch options, then Hydra overrides."""
    env = {**slurm, "NPROC_PER_NODE": str(processes), "RUN_DIR": str(run_dir)}
    options = [a for a in args if a.startswith("--")]
    overrides = [a for a in args if not a.startswith("--")]
    run_dir.parent.mkdir(parents=True, exist_ok=True)  # Slurm does not create the log's folder
    output = f"--output={run_dir.parent / 'slurm-%j.out'}"
    command = ["sbatch", "--parsable", f"--cpus-per-task={processes}", output, *options]
    return run([*command, str(SBATCH), *TOY, *overrides], env).strip()


def test_slurm_ddp_sbatch_trains_with_two_processes_on_one_node(slurm, tmp_path):
    run_dir = tmp_path / "runs" / "ddp"
    job = sbatch(slurm, run_dir, 2, "--wait", "variant=bahdanau", "trainer.max_updates=10")
    log = (tmp_path / "runs" / f"slurm-{job}.out").read_text()
    assert "data-parallel training on 2 processes (gloo)" in log
    assert [p.name for p in (tmp_path / "runs").iterdir() if p.is_dir()] == ["ddp"]
    assert (run_dir / "metrics.json").exists() and (run_dir / "checkpoints" / "best.pt").exists()


def job_field(env: dict[str, str], job: str, name: str = "JobState") -> str:
    """A field of `scontrol show job`, e.g. JobState or Restarts."""
    fields = run(["scontrol", "show", "job", job], env).split()
    return next(f.split("=", 1)[1] for f in fields if f.startswith(f"{name}="))


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)


def losses(run_dir: Path) -> list[float]:
    """The training loss of every update, from the run's final checkpoint."""
    last = torch.load(run_dir / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)
    return last["progress"]["losses"]


def test_a_requeued_job_continues_from_its_checkpoint_with_the_same_loss_curve(slurm, tmp_path):
    """`scontrol requeue` stops the running job (SIGTERM, then SIGKILL after KillWait) and queues
    it again under the same id; the script then resumes the run from checkpoints/last.pt."""
    overrides = ("variant=luong_general", "trainer.max_updates=200", "trainer.checkpoint_every=20")
    runs = tmp_path / "runs"
    job = sbatch(slurm, runs / "requeued", 1, *overrides)
    sbatch(slurm, runs / "reference", 1, *overrides)  # the same run, left alone

    first_checkpoint = runs / "requeued" / "checkpoints" / "last.pt"
    running = ("PENDING", "CONFIGURING", "RUNNING")
    wait_for(
        lambda: first_checkpoint.exists() or job_field(slurm, job) not in running,
        300,
        "the job's first checkpoint",
    )
    assert job_field(slurm, job) == "RUNNING", (runs / f"slurm-{job}.out").read_text()
    run(["scontrol", "requeue", job], slurm)

    def requeued() -> bool:
        return job_field(slurm, job, "Restarts") == "1" and job_field(slurm, job) in running

    wait_for(requeued, 120, "the job to be requeued")
    if job_field(slurm, job) == "PENDING":  # held until its old credentials expire (2 min)
        subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], env=slurm)
    wait_for(lambda: job_field(slurm, job) not in (*running, "COMPLETING"), 600, "the job to end")

    log = (runs / f"slurm-{job}.out").read_text()
    assert job_field(slurm, job) == "COMPLETED", log
    assert "requeued (restart 1): trainer.resume=auto continues" in log
    resumed_at = int(log.split("resumed from ")[1].split(" at update ")[1].split()[0])
    assert 0 < resumed_at < 200, log
    wait_for((runs / "reference" / "metrics.json").exists, 600, "the uninterrupted run")
    uninterrupted = losses(runs / "reference")
    assert len(uninterrupted) == 200
    assert losses(runs / "requeued") == pytest.approx(uninterrupted, rel=1e-6)
