"""Optuna studies on the smoke preset: grids run exactly once across workers, crashes resume,
NaN prunes, OOM fails one trial, config errors stop everything before the first trial, and
`doctor` agrees with MLflow."""
import collections
import dataclasses
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch

from benchmark.core.errors import BenchmarkError
from benchmark.experiments.base import Experiment, Row
from benchmark.experiments.presets import smoke
from benchmark.experiments.registry import EXPERIMENTS
from benchmark.study.liveness import RESUME
from benchmark.study.run import study
from benchmark.study.storage import open_storage
from benchmark.study.trials import trial_config
from benchmark.study.workers import seconds_left
from tests.helpers import BENCH, bench


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A private MLflow store and journal for the test, for in-process and subprocess use alike (the URI set
    in-process too: an earlier test's `mlflow.set_tracking_uri` in the same xdist worker outranks the
    environment, and `MlflowClient()` then looked for this test's runs in that test's store)."""
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.chdir(tmp_path)
    return tmp_path / "study.journal"


def trials_by_study(journal) -> dict:
    import optuna

    storage = open_storage(str(journal))
    return {name: optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)
            for name in optuna.get_all_study_names(storage)}


def mlflow_runs(experiment: str) -> list:
    import mlflow

    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    return mlflow.search_runs(experiment_names=[experiment], output_format="list")


def assert_every_point_complete_once(experiment, preset: str, journal) -> dict:
    trials = trials_by_study(journal)
    for cell in experiment.cells(preset):
        done = [t for t in trials[cell.name] if t.state.name == "COMPLETE"]
        assert sorted(map(str, (t.params for t in done))) == sorted(map(str, cell.points())), cell.name
        final = [t for t in trials[f"{cell.name}/final"] if t.state.name == "COMPLETE"]
        assert len(final) == len(cell.seeds) - 1  # the best grid trial is the first seed's final run
    return trials


def test_time_left_counts_each_cell_at_its_own_trial_time_and_shares_it_among_workers():
    # (trials left, seconds of finished trials, steps a trial): a slow cell at its own 400 s a trial, an
    # unmeasured one at the 2 s a step the measured training cells took (800 s over 400 steps), zero-shot free, one done
    cells = [(2, [100.0, 300.0], 100), (3, [400.0], 200), (1, [], 50), (4, [], 0), (0, [], 100)]
    by_hand = 2 * 200.0 + 3 * 400.0 + 1 * 2.0 * 50
    assert seconds_left(cells, workers=1) == pytest.approx(by_hand)
    assert seconds_left(cells, workers=2) == pytest.approx(by_hand / 2)
    assert seconds_left([(1, [], 100), (2, [30.0], 0)], workers=1) is None  # nothing trained has a time yet
    assert seconds_left([(0, [], 100), (2, [30.0], 0)], workers=1) == pytest.approx(60.0)


@pytest.mark.slow
def test_two_workers_run_every_grid_point_exactly_once(store):
    proc = bench("study", "table4", "--preset", "smoke", "--workers", "2", "--storage", str(store))
    assert proc.returncode == 0, proc.stderr[-3000:]
    experiment = EXPERIMENTS.get("table4")
    trials = assert_every_point_complete_once(experiment, "smoke", store)
    workers = {t.user_attrs["worker"] for name, ts in trials.items() if "/final" not in name for t in ts}
    assert len(workers) == 2  # both processes drained the grid queue
    assert re.search(r"\[\d+/\d+ trials; \dh\d\dm elapsed here, ~\dh\d\dm left\]", proc.stdout)  # progress, once timed
    runs = mlflow_runs("table4")
    children = collections.Counter((r.data.tags["study"], r.data.tags["trial"]) for r in runs if "trial" in r.data.tags)
    assert len(children) == sum(len(ts) for ts in trials.values()) and set(children.values()) == {1}
    parents = [r for r in runs if "trial" not in r.data.tags]
    assert len(parents) == len(experiment.cells("smoke")) and {r.info.status for r in parents} == {"FINISHED"}
    assert all(r.data.tags.get("mlflow.parentRunId") in {p.info.run_id for p in parents}
               for r in runs if "trial" in r.data.tags)
    assert bench("doctor", "table4", "--storage", str(store)).returncode == 0
    # the report reads what a real study logged
    report = bench("report", "table4", "--preset", "smoke", "--storage", str(store))
    assert report.returncode == 0, report.stderr[-3000:]
    folder = store.parent / "runs" / "reports" / "table4" / "smoke"
    table = (folder / "table.md").read_text()
    assert all(f"| {row.label} | " in table for row in experiment.rows) and "| - |" not in table
    page = (folder / "report.md").read_text()
    assert "- final runs: 18" in page and "torch " in page and "transformers " in page  # packages tag
    assert len(list((folder / "optuna").glob("*.png"))) == 8  # every study but zero-shot's varies lr
    assert all((folder / f"{name}.pdf").is_file() for name in ("figure1_drift", "figure2_loss", "figure4_convergence"))


@pytest.mark.slow
def test_kill_9_mid_study_then_resume_finishes_without_duplicates(store):
    proc = subprocess.Popen([*BENCH, "study", "table13", "--preset", "smoke", "--storage", str(store)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ))
    deadline = time.time() + 300
    killed_at = None
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
        if not store.exists():
            continue
        trials = [t for ts in trials_by_study(store).values() for t in ts]
        states = collections.Counter(t.state.name for t in trials)
        claimed = [t for t in trials if t.state.name == "RUNNING" and "worker" in t.user_attrs]
        if states["COMPLETE"] >= 2 and states["RUNNING"] == 1 and claimed:  # taken and stamped (a kill
            proc.send_signal(signal.SIGKILL)                                 # in between: the next test)
            proc.wait()
            killed_at = next(t.number for t in trials if t.state.name == "RUNNING")
            break
    assert killed_at is not None, "never caught a trial running"
    resumed = bench("study", "table13", "--preset", "smoke", "--storage", str(store))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    trials = assert_every_point_complete_once(EXPERIMENTS.get("table13"), "smoke", store)
    stale = [t for ts in trials.values() for t in ts if t.state.name == "FAIL"]
    assert len(stale) == 1 and stale[0].user_attrs["reason"] == "stale"
    went_on(stale[0], trials, "table13")
    doctor = bench("doctor", "table13", "--storage", str(store))
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr  # the dead worker's MLflow run was closed


# `benchmark study` whose process kills itself (kill -9) the moment MLflow has created its first trial's run:
# the trial is RUNNING and claimed, and has not recorded the run's id
DIE_AFTER_RUN_CREATED = """
import os, signal, sys
from benchmark import tracking
from benchmark.cli import main
start = tracking.start_run
def start_then_die(*args, **kwargs):
    start(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)
tracking.start_run = start_then_die
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_a_run_created_by_a_trial_killed_before_recording_it_is_ended_on_resume(store):
    died = subprocess.run([sys.executable, "-c", DIE_AFTER_RUN_CREATED, "study", "table13", "--preset", "smoke",
                           "--storage", str(store)], capture_output=True, text=True, env=dict(os.environ))
    assert died.returncode == -signal.SIGKILL, died.stderr[-3000:]
    (orphan,) = [r for r in mlflow_runs("table13") if "trial" in r.data.tags]
    ((name, running),) = [(n, t) for n, ts in trials_by_study(store).items() for t in ts if t.state.name == "RUNNING"]
    assert orphan.info.status == "RUNNING" and "mlflow_run_id" not in running.user_attrs
    assert (orphan.data.tags["study"], orphan.data.tags["trial"]) == (name, str(running.number))
    resumed = bench("study", "table13", "--preset", "smoke", "--storage", str(store))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    trials = assert_every_point_complete_once(EXPERIMENTS.get("table13"), "smoke", store)
    (stale,) = [t for t in trials[name] if t.state.name == "FAIL"]
    assert stale.number == running.number and stale.user_attrs["reason"] == "stale"
    from mlflow import MlflowClient

    ended = MlflowClient().get_run(orphan.info.run_id)
    assert ended.info.status == "KILLED" and ended.data.tags["reason"] == "stale"
    doctor = bench("doctor", "table13", "--storage", str(store))
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr


def test_a_taken_trial_never_stamped_by_its_worker_is_dead_after_the_grace():
    """A worker killed between taking a trial and `claim`'s write leaves no pid to look up: the trial is
    presumed dead once CLAIM_GRACE_S has passed since it started, and not before."""
    import optuna

    from benchmark.study import liveness
    from benchmark.study.optuna_private import pop_waiting_trial

    study = optuna.create_study()
    study.enqueue_trial({"lr": 1e-3})
    pop_waiting_trial(study)
    (taken,) = study.get_trials(deepcopy=False)
    began = taken.datetime_start.timestamp()
    assert not liveness._dead(taken, "here", began + liveness.CLAIM_GRACE_S - 1)
    assert liveness._dead(taken, "here", began + liveness.CLAIM_GRACE_S + 1)
    liveness.claim(study, taken)
    (claimed,) = study.get_trials(deepcopy=False)
    assert not liveness._dead(claimed, socket.gethostname(), began + 10 * liveness.STALE_S)  # its pid (ours) lives


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_the_rerun_resumes(store):
    proc = subprocess.Popen([*BENCH, "study", "table13", "--preset", "smoke", "--storage", str(store)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
        if not store.exists():
            continue
        states = collections.Counter(t.state.name for ts in trials_by_study(store).values() for t in ts)
        if states["RUNNING"] == 1 and states["WAITING"] >= 3:  # mid-study, mid-trial
            proc.send_signal(signal.SIGINT)
            break
    assert proc.wait(timeout=120) == 130
    assert "Traceback" not in proc.stderr.read()
    interrupted = [t for ts in trials_by_study(store).values() for t in ts if t.state.name == "FAIL"]
    assert [t.user_attrs["reason"] for t in interrupted] == ["interrupted"]
    killed = [r for r in mlflow_runs("table13") if r.info.status == "KILLED"]
    assert [r.data.tags["reason"] for r in killed] == ["interrupted"]
    assert bench("study", "table13", "--preset", "smoke", "--storage", str(store)).returncode == 0
    trials = assert_every_point_complete_once(EXPERIMENTS.get("table13"), "smoke", store)
    went_on(interrupted[0], trials, "table13")


def went_on(stopped, trials: dict, experiment: str) -> None:
    """A trial stopped mid-run came back as a new trial of the same point that continued its MLflow run from
    the checkpoint (every method but full fine-tuning writes one, Ctrl-C writes one on the spot), or, with
    no checkpoint, as a fresh run; either way each trial's run is counted once."""
    from mlflow import MlflowClient

    run_id = stopped.user_attrs.get("mlflow_run_id")  # none when killed before its run started
    followers = [t for ts in trials.values() for t in ts if run_id and t.user_attrs.get(RESUME) == run_id]
    if followers:
        run = MlflowClient().get_run(run_id)
        assert [(t.state.name, t.user_attrs["mlflow_run_id"]) for t in followers] == [("COMPLETE", run_id)]
        assert followers[0].params == stopped.params
        assert run.info.status == "FINISHED" and run.data.tags["resumed"] and "reason" not in run.data.tags
    elif run_id:
        assert MlflowClient().get_run(run_id).info.status == "KILLED"
    children = [r for r in mlflow_runs(experiment) if "trial" in r.data.tags]
    assert {t.user_attrs["mlflow_run_id"] for ts in trials.values() for t in ts if "mlflow_run_id" in t.user_attrs} <= {
        r.info.run_id for r in children}
    # each run names one trial of its study, each trial has one run at most (a kill between MLflow creating a
    # run and the trial recording its id leaves that run unknown to the trial: its tags still name the trial)
    owners = collections.Counter((r.data.tags["study"], int(r.data.tags["trial"])) for r in children)
    assert set(owners) <= {(name, t.number) for name, ts in trials.items() for t in ts} and set(owners.values()) == {1}


def unit_experiment(grid: dict) -> Experiment:
    """A one-cell MeZO experiment on the smoke preset with the given grid (in-process only)."""
    return Experiment(name="unit", description="test", rows=(Row("M", "mezo"),), grids={"mezo": grid},
                      presets={"smoke": dataclasses.replace(smoke(), grids={"mezo": grid})})


def test_nan_loss_prunes_the_trial_with_reason_nan(store, monkeypatch):
    import benchmark.runner as runner
    from benchmark.scoring import BatchLoss

    real_train, real_copies, poisoned = runner.train, BatchLoss.copies, {"on": False}

    def train(cfg, hp, *args, **kwargs):  # NaN injection: the lr=1e-3 trial's training loss is NaN
        poisoned["on"] = hp.lr == 1e-3
        return real_train(cfg, hp, *args, **kwargs)

    def copies(self, n):
        value = real_copies(self, n)
        return value * float("nan") if poisoned["on"] else value

    monkeypatch.setattr(runner, "train", train)
    monkeypatch.setattr(BatchLoss, "copies", copies)
    experiment = unit_experiment({"lr": ("1e-3", "1e-4"), "eps": ("1e-3",)})
    study(experiment, "smoke", str(store))
    (name, trials), = [(n, ts) for n, ts in trials_by_study(store).items() if "/final" not in n]
    by_lr = {t.params["lr"]: t for t in trials}
    assert by_lr["1e-3"].state.name == "PRUNED" and by_lr["1e-3"].user_attrs["reason"] == "nan"
    assert by_lr["1e-4"].state.name == "COMPLETE"
    run = next(r for r in mlflow_runs("unit") if r.data.tags.get("trial") == str(by_lr["1e-3"].number)
               and r.data.tags.get("study") == name)
    assert run.info.status == "KILLED" and run.data.tags["reason"] == "nan"


def test_out_of_memory_fails_one_trial_and_the_study_goes_on(store, monkeypatch):
    import benchmark.runner as runner

    real = runner.train

    def train(cfg, hp, *args, **kwargs):
        if hp.lr == 1e-3:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(cfg, hp, *args, **kwargs)

    monkeypatch.setattr(runner, "train", train)
    experiment = unit_experiment({"lr": ("1e-3", "1e-4"), "eps": ("1e-3",)})
    study(experiment, "smoke", str(store))
    trials = next(ts for n, ts in trials_by_study(store).items() if "/final" not in n)
    by_lr = {t.params["lr"]: t for t in trials}
    assert by_lr["1e-3"].state.name == "FAIL" and by_lr["1e-3"].user_attrs["reason"] == "oom"
    assert by_lr["1e-3"].user_attrs["error"] == "CUDA out of memory. Tried to allocate 2.00 GiB"
    assert by_lr["1e-4"].state.name == "COMPLETE"
    failed = [r for r in mlflow_runs("unit") if r.info.status == "FAILED"]
    assert len(failed) == 1 and failed[0].data.tags["error"] == "oom"


@pytest.mark.parametrize("grid,message", [
    ({"lr": ("1e-3", "-1")}, "lr=-1.0 is out of range"),
    ({"lr": ("1e-3",), "learning_rate": ("1e-3",)}, "unknown setting 'learning_rate'"),
    ({"lr": ("1e-3",), "k": ("5000",)}, "k=5000 needs 10000 train-pool rows per class"),
])
def test_config_error_fails_before_any_trial_starts(store, grid, message):
    import optuna

    experiment = unit_experiment(grid)
    with pytest.raises(BenchmarkError, match=message):
        study(experiment, "smoke", str(store))
    assert not store.exists() or optuna.get_all_study_names(open_storage(str(store))) == []


@pytest.mark.slow
def test_doctor_finds_an_orphan_run(store):
    study(EXPERIMENTS.get("demo"), "smoke", str(store))
    import mlflow

    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    name = EXPERIMENTS.get("demo").cells("smoke")[1].name
    with mlflow.start_run(experiment_id=mlflow.get_experiment_by_name("demo").experiment_id,
                          tags={"study": name, "trial": "99"}):
        pass
    doctor = bench("doctor", "demo", "--storage", str(store))
    assert doctor.returncode == 2 and "orphan MLflow run" in doctor.stdout and "trial 99" in doctor.stdout


def test_free_search_spends_its_budget_inside_the_grid_ranges(store):
    experiment = unit_experiment({"lr": ("1e-4", "1e-2"), "eps": ("1e-3",)})
    summary = study(experiment, "smoke", str(store), search="tpe", trials=6)
    (name, counts), = summary.items()
    assert counts["COMPLETE"] + counts["PRUNED"] == 6 and counts["FAIL"] == 0
    trials = trials_by_study(store)[f"{name}/tpe"]
    lrs = [t.params["lr"] for t in trials]
    assert all(1e-4 <= lr <= 1e-2 for lr in lrs) and len(set(lrs)) == 6  # sampled, not the grid's two values
    assert all(t.user_attrs["point"]["eps"] == "1e-3" for t in trials)  # single values stay fixed
    final = trials_by_study(store)[f"{name}/final"]
    assert [t.state.name for t in final] == ["COMPLETE"]  # seed 1 of the best configuration
    from benchmark.doctor import doctor

    assert doctor(experiment, open_storage(str(store))) == []
    tpe_run = next(r for r in mlflow_runs(experiment.name) if r.data.tags.get("study") == f"{name}/tpe")
    import mlflow

    mlflow.MlflowClient().set_terminated(tpe_run.info.run_id, "FAILED")  # Optuna says COMPLETE
    assert [p for p in doctor(experiment, open_storage(str(store))) if "/tpe trial" in p and "is FAILED" in p]


@pytest.mark.slow
def test_enqueue_only_then_external_workers_finish_grid_and_finals(store):
    """The SLURM pattern: one `study --workers 0` enqueues, independent `worker`s do everything else."""
    enqueue = bench("study", "demo", "--preset", "smoke", "--workers", "0", "--storage", str(store))
    assert enqueue.returncode == 0 and "start workers with: benchmark worker demo" in enqueue.stdout
    assert all(t.state.name == "WAITING" for ts in trials_by_study(store).values() for t in ts)
    workers = [subprocess.Popen([*BENCH, "worker", "demo", "--storage", str(store)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=dict(os.environ)) for _ in range(2)]
    assert [w.wait(timeout=600) for w in workers] == [0, 0]
    assert_every_point_complete_once(EXPERIMENTS.get("demo"), "smoke", store)
    again = bench("study", "demo", "--preset", "smoke", "--storage", str(store))  # resumes: nothing left to run
    assert again.returncode == 0 and "FT: 2 complete, 0 pruned, 0 fail" in again.stdout
    assert len(mlflow_runs("demo")) == 3 + 5 + 3  # parents, grid trials, finals: nothing ran twice


def test_each_cell_takes_the_step_budget_its_method_declares():
    """First-order rows get the preset's fo_steps, the rest zo_steps, from each method's `first_order`
    (the name parsing this replaces split "zero-shot" into "zero" and gave it the ZO budget); zero-shot's
    trials then train none, and their record says so."""
    table6, table4 = EXPERIMENTS.get("table6"), EXPERIMENTS.get("table4")
    preset = table6.preset("offline")
    assert preset.fo_steps != preset.zo_steps
    steps = {c.row.method: c.steps for c in table6.cells("offline")}
    assert {m for m, s in steps.items() if s == preset.fo_steps} == {"ft", "lora"}
    assert steps["dizo-fo"] == steps["mezo-lora"] == preset.zo_steps
    zero_shot = next(c for c in table4.cells("offline") if c.row.method == "zero-shot")
    assert trial_config(zero_shot, {})[0].steps == 0


def ctrl_c_at_the_first_trials_step_1(experiment: Experiment, journal, monkeypatch) -> None:
    """Run the study with Ctrl-C arriving at its first trial's step 1 (the checkpoint is written on the spot)."""
    from benchmark.interrupt import Interrupt, Interrupted

    checks = {"n": 0}

    def check(self):  # calls: the worker's loop, the trial's step 0, its step 1
        checks["n"] += 1
        if checks["n"] == 3:
            raise Interrupted

    monkeypatch.setattr(Interrupt, "check", check)
    with pytest.raises(KeyboardInterrupt):
        study(experiment, "smoke", str(journal))
    monkeypatch.setattr(Interrupt, "check", lambda self: None)


def test_an_interrupted_trial_resumes_its_run_from_where_it_stopped(store, monkeypatch):
    """Ctrl-C after the first trial's step 1: the trial fails `interrupted`, its point comes back as a new
    trial that continues the same MLflow run from step 1 (the checkpoint written on the spot)."""
    from mlflow import MlflowClient


    experiment = unit_experiment({"lr": ("1e-3",), "eps": ("1e-3",)})
    ctrl_c_at_the_first_trials_step_1(experiment, store, monkeypatch)
    study(experiment, "smoke", str(store))
    (name, trials), = [(n, ts) for n, ts in trials_by_study(store).items() if "/final" not in n]
    stopped, resumed = trials
    assert (stopped.state.name, stopped.user_attrs["reason"]) == ("FAIL", "interrupted")
    run_id = stopped.user_attrs["mlflow_run_id"]
    assert resumed.state.name == "COMPLETE" and resumed.user_attrs[RESUME] == resumed.user_attrs["mlflow_run_id"] == run_id
    run = MlflowClient().get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags["resumed"] == "1" and run.data.tags["trial"] == "1"
    assert [m.step for m in MlflowClient().get_metric_history(run_id, "train/loss")] == [1, 2, 3, 4]
    assert run.data.metrics["perf/forward_passes"] == 8  # every step once
    assert {r.info.run_id for r in mlflow_runs("unit") if "trial" in r.data.tags} >= {run_id}
    went_on(stopped, trials_by_study(store), "unit")


def test_a_trial_cut_off_on_one_machine_resumes_on_the_next_from_its_carried_checkpoint(store, monkeypatch):
    """A committed study's session ends at the first trial's step 1 (the checkpoint is carried beside the
    journal); the next session's machine has a fresh MLflow store and no checkpoints, and its first start
    finds the trial it took stale. The trial resumes from the carried checkpoint in a run made again in the
    new store, and ends where an uninterrupted study ends, bit for bit."""
    from mlflow import MlflowClient

    from benchmark.core import records
    from benchmark.study import carry

    experiment = dataclasses.replace(unit_experiment({"lr": ("1e-3",), "eps": ("1e-3",)}), records=True)
    name = experiment.cells("smoke")[0].name
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store.parent}/straight.db")
    monkeypatch.setenv("BENCHMARK_RECORDS", str(store.parent / "straight"))
    study(experiment, "smoke", str(store.parent / "straight.journal"))
    straight = {r["tags"]["trial"]: r for r in records.read(store.parent / "straight" / "unit")
                if "/final" not in r["tags"]["study"]}["0"]

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store.parent}/first.db")
    monkeypatch.setenv("BENCHMARK_RECORDS", str(store.parent / "records"))
    monkeypatch.setenv("BENCHMARK_CHECKPOINTS", str(store.parent / "first-checkpoints"))
    ctrl_c_at_the_first_trials_step_1(experiment, store, monkeypatch)
    stopped, waiting = trials_by_study(store)[name]
    old_run = stopped.user_attrs["mlflow_run_id"]
    assert waiting.state.name == "WAITING"
    assert carry.exists("unit", old_run)
    taken_by_a_dead_worker_elsewhere(store, name, old_run)  # the next session takes the point again, then ends

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store.parent}/next.db")
    monkeypatch.setenv("BENCHMARK_CHECKPOINTS", str(store.parent / "next-checkpoints"))
    study(experiment, "smoke", str(store))
    trials = assert_every_point_complete_once(experiment, "smoke", store)[name]
    assert [(t.state.name, t.user_attrs.get("reason")) for t in trials[:2]] == [("FAIL", "interrupted"), ("FAIL", "stale")]
    (resumed,) = [t for t in trials if t.state.name == "COMPLETE"]
    new_run = resumed.user_attrs["mlflow_run_id"]
    assert resumed.user_attrs[RESUME] == old_run != new_run
    run = MlflowClient().get_run(new_run)
    assert run.data.tags["carried_from"] == old_run and run.data.tags["carried_cpu"].endswith("(steps 0-1)")
    assert [m.step for m in MlflowClient().get_metric_history(new_run, "train/loss")] == [1, 2, 3, 4]
    assert run.data.metrics["perf/forward_passes"] == 8  # every step once, across both machines
    (record,) = [r for r in records.read(store.parent / "records" / "unit") if "/final" not in r["tags"]["study"]]
    assert record["run_id"] == new_run and record["summary"]["test/score"] == straight["summary"]["test/score"]
    assert record["curves"] == straight["curves"]
    assert not any((store.parent / "records" / "unit" / carry.FOLDER).iterdir())  # dropped once trials ended




def test_a_tuned_by_row_runs_its_source_rows_best_point_and_every_trial_leaves_a_record(store, monkeypatch, capsys):
    from benchmark.core import records

    monkeypatch.setenv("BENCHMARK_RECORDS", str(store.parent / "records"))
    grid = {"lr": ("1e-3", "1e-4"), "eps": ("1e-3",)}
    experiment = Experiment(
        name="unit", description="test", records=True, grids={"mezo": grid},
        rows=(Row("M", "mezo", seeds=(0, 1, 2)), Row("M eps", "mezo", {"eps": "1e-2"}, tuned_by="M")),
        presets={"smoke": dataclasses.replace(smoke(), grids={"mezo": grid})})
    study(experiment, "smoke", str(store))
    trials = trials_by_study(store)
    source, tuned = experiment.cells("smoke")
    best = optuna_best_point(store, f"{source.name}/final")
    assert [t.params for t in trials[tuned.name]] == [best]  # one point, the source's best, not the grid
    assert sorted(t.user_attrs["seed"] for t in trials[f"{source.name}/final"]) == [1, 2]  # the row's seeds
    assert sorted(t.user_attrs["seed"] for t in trials[f"{tuned.name}/final"]) == [1]  # the preset's (0, 1)
    saved = records.read(store.parent / "records" / "unit")
    assert len(saved) == sum(len(ts) for ts in trials.values()) == 2 + 2 + 1 + 1
    finals = {(r["tags"]["row"], int(r["params"]["seed"])) for r in saved if r["tags"].get("final") == "true"}
    assert finals == {("M", 0), ("M", 1), ("M", 2), ("M eps", 0), ("M eps", 1)}
    assert all(r["params"]["eps"] == "0.01" for r in saved if r["tags"]["row"] == "M eps")
    out = capsys.readouterr().out.splitlines()
    assert sum(line.startswith(f"{tuned.name}: waiting") for line in out) == 1  # said once, not every turn
    ran = [line.split(" trial ")[0].removeprefix(source.name) for line in out if " trial " in line]
    # one trial per row in turn, not row by row; M's seed 2, beyond the preset's (0, 1), waits for the rest
    assert ran == ["", "", "/final", " eps", " eps/final", "/final"]
    logged = [line for line in out if line.startswith(tuned.name) and " trial " in line]
    assert len(logged) == 2 and all("'eps': '1e-2'" in line for line in logged)  # what ran, not the borrowed point


def optuna_load(journal, name: str):
    import optuna

    return optuna.load_study(study_name=name, storage=open_storage(str(journal)))


def optuna_best_point(journal, name: str) -> dict:
    return optuna_load(journal, name).user_attrs["best_point"]


def taken_by_a_dead_worker_elsewhere(journal, name: str, run_id: str):
    """The study's next waiting trial, taken by a worker on another host that recorded MLflow run `run_id`
    and then died an hour ago (no heartbeat since): what a session cut off mid-trial leaves in the journal."""
    trial = optuna_load(journal, name).ask()
    for key, value in {"worker": "old-machine:1", "heartbeat": time.time() - 3600, "mlflow_run_id": run_id}.items():
        trial.set_user_attr(key, value)
    return trial


def test_a_study_journal_carried_to_a_fresh_mlflow_store_goes_on(store, monkeypatch):
    """A committed journal on a new machine: the cells' parent runs are made again in the new store, and a
    trial the old machine left RUNNING (its session ended mid-run) is failed as stale and run again."""
    import benchmark.runner as runner

    real, calls = runner.train, {"n": 0}

    def train(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # the session ends during the second trial
        return real(*args, **kwargs)

    monkeypatch.setattr(runner, "train", train)
    monkeypatch.setenv("BENCHMARK_RECORDS", str(store.parent / "records"))
    experiment = dataclasses.replace(unit_experiment({"lr": ("1e-3", "1e-4"), "eps": ("1e-3",)}), records=True)
    with pytest.raises(KeyboardInterrupt):
        study(experiment, "smoke", str(store))
    monkeypatch.setattr(runner, "train", real)
    name = experiment.cells("smoke")[0].name
    (old_run,) = [r.info.run_id for r in mlflow_runs("unit") if r.data.tags.get("trial") == "0"]
    left = taken_by_a_dead_worker_elsewhere(store, name, old_run)  # the requeued point
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store.parent}/fresh.db")
    study(experiment, "smoke", str(store))
    trials = assert_every_point_complete_once(experiment, "smoke", store)
    assert [(t.state.name, t.user_attrs.get("reason")) for t in trials[name] if t.number == left.number] \
        == [("FAIL", "stale")]
    runs = {r.info.run_id: r for r in mlflow_runs("unit")}
    parents = {r.data.tags["mlflow.parentRunId"] for r in runs.values() if "trial" in r.data.tags}
    assert parents and parents <= set(runs)  # every child's parent is a run of the new store
    from benchmark.core import records

    saved = records.read(store.parent / "records" / "unit")
    best = optuna_best_point(store, f"{experiment.cells('smoke')[0].name}/final")
    assert len(saved) == 3 and {r["run_id"] in runs for r in saved} == {True, False}  # one from the first store
    assert [r["params"]["lr"] for r in saved if r["tags"].get("final") == "true" and "/final" not in r["tags"]["study"]] \
        == [str(float(best["lr"]))]  # the best trial's record is marked final, whichever store holds its run


def test_the_demo_study_runs_what_make_demo_runs():
    """`benchmark study demo` is `make demo` as a study, and the Makefile and demo.py each write its settings:
    every `benchmark run` of `make -n demo`, read by the CLI's own parser, builds the config and
    hyperparameters that its row's one grid point builds in the study."""
    from benchmark.cli import parser
    from benchmark.core.settings import parse_set_args
    from benchmark.runner import build_run

    made = subprocess.run(["make", "-n", "demo"], capture_output=True, text=True, check=True).stdout.splitlines()
    runs = [parser().parse_args(shlex.split(line)[1:]) for line in made if "benchmark run " in line]
    cells = {c.row.method: c for c in EXPERIMENTS.get("demo").cells("offline")}
    assert sorted(args.method for args in runs) == sorted(cells)
    for args in runs:
        point, = cells[args.method].points()
        assert trial_config(cells[args.method], point) == build_run(args.method, args.task, parse_set_args(args.set),
                                                      model=args.model, steps=args.steps, experiment=args.experiment)


def test_the_pairs_round_takes_the_cell_whose_next_seed_is_lowest(tmp_path):
    """MeZO's seed 10 done, DiZO's seed 9 put back after an interruption: DiZO's 9 runs before either row's
    next seed (the rows' order would run MeZO's 11 first, leaving the pair open for a whole trial)."""
    import math
    from types import SimpleNamespace

    import optuna

    from benchmark.study.storage import open_storage
    from benchmark.study.workers import next_seed, seed_order

    storage = open_storage(str(tmp_path / "s.journal"))
    for name, seeds in (("MeZO", (11, 12)), ("DiZO", (11, 12, 9))):
        study = optuna.create_study(study_name=f"{name}/final", storage=storage)
        for seed in seeds:
            study.enqueue_trial({"lr": "3e-5", "seed": seed})
    cells = [SimpleNamespace(name=n) for n in ("MeZO", "DiZO", "FT")]  # FT: no final study yet
    assert [next_seed(storage, c) for c in cells] == [11, 9, math.inf]
    assert [c.name for c in seed_order(storage, cells)] == ["DiZO", "MeZO", "FT"]
