"""Seed logs, replay and mid-run resume: a killed run resumed from its last checkpoint ends bit for bit as
an uninterrupted one; a ZO run's weights rebuilt from its seed log are the run's; bad logs and
mismatched resumes fail in one line before any work."""
import dataclasses
import glob
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Callable

import pytest
import torch
from safetensors.torch import load_file

from benchmark import checkpoint, loop, seedlog
from benchmark.core.errors import BenchmarkError
from benchmark.loop import build_method, replay_log, train
from benchmark.runner import build_run, sample
from methods.registry import METHODS
from methods.zo_bench import ZOSGDSign
from tests.golden import fingerprint
from tests.helpers import HELD, BENCH, CPU, ROWS, SETTINGS, TRAINED, bench, params_of, task_file, tiny, write_rows

# settings under which every mechanism is exercised within 20 steps: the weights move, HiZOO's Hessian moves,
# DiZO projects before and after the interruption, full fine-tuning checkpoints
ZO_LR = {m: {"lr": "0.9" if "lora" in m else "1e-2"} for m in TRAINED if METHODS.get(m).replays}
MOVING = {m: {**ZO_LR.get(m, {}), **({"hessian_smooth": "1e-2"} if m.startswith("hizoo") else {}),
              **({"projection_interval": "4"} if METHODS.get(m).projects else {})} for m in TRAINED}
MOVING["ft"] = {"checkpoint": "eval"}


class Killed(Exception):
    """Stands for kill -9 between two steps (the in-process tests)."""


DEV = [0.5, 0.6, 0.9, 0.7, 0.6]  # dev at steps 0, 5, ..., 20: the tested weights are step 10's


def scripted_dev(monkeypatch, scores: list[float]) -> None:
    """Dev scores in the order the run asks for them (then the real ones: test is scored for real). The
    real dev (16 toy examples) moves by single examples, and where it peaks turns on the kernels' last bits
    (HiZOO on a 2-core AMD EPYC: never above step 0's; on a Xeon, above it)."""
    real, dev = loop.evaluate, iter(scores)

    def evaluate(*args, **kwargs) -> dict[str, float]:
        scores = real(*args, **kwargs)
        return {**scores, "score": next(dev, scores["score"])}

    monkeypatch.setattr(loop, "evaluate", evaluate)


def toy_run(method: str, tmp_path, monkeypatch, kill_at: int | None = None, resume: bool = False):
    """20 steps of `method` on the toy task, dev peaking at step 10, checkpointing into tmp_path at every
    evaluation (every 5 steps); `kill_at`: die after that step; `resume`: go on from the checkpoint there
    (at step 10: dev is asked at 15 and 20). Gives the result, the weights it tested (step 10's, restored)
    and the last step's."""
    cfg, hp = build_run(method, "toy", {**SETTINGS.get(method, {}), **MOVING.get(method, {}), "eval_every": "5"},
                        model="tiny-random-llama", steps=20, seed=1)
    _, _, splits = sample(cfg)
    loaded = tiny()
    directory = tmp_path / "ckpt" / method
    head = seedlog.header(method, cfg.model, "", "fp32", "cpu", "", "", {})
    last = {}
    scripted_dev(monkeypatch, DEV[3:] if resume else DEV)

    def save(snapshot):
        snapshot.header = head
        checkpoint.save(directory, snapshot)

    def on_metrics(metrics, step):
        if step == kill_at:
            raise Killed
        if step == cfg.steps:
            last.update(params_of(loaded.model))

    snapshot = checkpoint.load(method) if resume else None
    try:
        result = train(cfg, hp, loaded, splits, CPU, on_metrics, False, False, snapshot, save)
    except Killed:
        return None, None, None
    return result, params_of(loaded.model), last


def nudged(entry: dict, factor: float = 1 + 1e-6) -> dict:
    """A step record with its gradient off by a millionth (FZOO's first probe's)."""
    if "grads" in entry:
        return dict(entry, grads=[entry["grads"][0] * factor, *entry["grads"][1:]])
    return dict(entry, grad=entry["grad"] * factor)


# The LoRA twins of ZO-Bench's optimizers and Forward-Grad resume and replay through code these tests hold twice
# already: their base's step and the adapters (mezo-lora, dizo-lora). One toy run per method serves the resume
# and the replay: a method's share of this file is three 20-step runs and two replays.


@pytest.mark.parametrize("method", HELD)
def test_a_killed_run_resumes_and_its_log_replays_bit_for_bit(method, tmp_path, monkeypatch):
    """Killed at step 13 (checkpoint at 10): the resumed run redoes 11-13 and ends with the uninterrupted
    run's last weights, tested weights (best on dev at step 10, before the kill), losses, seed log, best step
    and test score, exactly. Then a fresh model plus the uninterrupted run's log: the weights it tested, bit
    for bit (HiZOO's Hessian and DiZO's projections included); one scalar off by a millionth (ZO-SGD-Sign: its
    sign flipped) at step 3: not."""
    monkeypatch.setenv("BENCHMARK_CHECKPOINTS", str(tmp_path / "ckpt"))
    whole, tested, last = toy_run(method, tmp_path, monkeypatch)
    assert whole.best_step == 10
    toy_run(method, tmp_path, monkeypatch, kill_at=13)
    assert checkpoint.load(method).progress.step == 10
    replays = METHODS.get(method).replays
    if replays:  # its weights are the log replayed: a checkpoint without one is refused
        log = tmp_path / "ckpt" / method / seedlog.FILE
        kept = log.read_bytes()
        log.unlink()
        with pytest.raises(BenchmarkError, match=f"--resume {method}: .*seed_log.jsonl is missing"):
            checkpoint.load(method)
        log.write_bytes(kept)
    resumed, resumed_tested, resumed_last = toy_run(method, tmp_path, monkeypatch, resume=True)
    for ran, again in ((last, resumed_last), (tested, resumed_tested)):
        assert all(torch.equal(ran[n], again[n]) for n in ran), method
    assert resumed.losses == whole.losses and resumed.log == whole.log
    assert (resumed.best_step, resumed.dev_best, resumed.test) == (whole.best_step, whole.dev_best, whole.test)
    assert resumed.forward_passes == whole.forward_passes and resumed.resume_s > 0
    if not replays:
        return
    assert [e["dev"] for e in whole.log if "eval" in e] == DEV
    steps = [e for e in whole.log if "step" in e]  # the log holds what moved: each step's seed and scalars, DiZO's rounds
    assert len(steps) == 20 and all(e["seed"] for e in steps)
    assert sum("projection" in e for e in steps) == (5 if METHODS.get(method).projects else 0)
    cfg, hp = build_run(method, "toy", {**SETTINGS.get(method, {}), **MOVING.get(method, {}), "eval_every": "5"},
                        model="tiny-random-llama", steps=20, seed=1)
    loaded = tiny()
    replayer = build_method(cfg, hp, loaded.model)
    fresh = params_of(loaded.model)
    replayer.restore(replay_log(replayer, whole.log, whole.best_step))
    rebuilt = params_of(loaded.model)
    assert all(torch.equal(tested[n], rebuilt[n]) for n in tested)
    assert any(not torch.equal(fresh[n], rebuilt[n]) for n in fresh)  # it did move
    factor = -1.0 if issubclass(METHODS.get(method), ZOSGDSign) else 1 + 1e-6  # sign(g) z: a millionth is the same
    broken = [nudged(e, factor) if e.get("step") == 3 else e for e in whole.log]
    again = tiny()
    replayer = build_method(cfg, hp, again.model)
    replayer.restore(replay_log(replayer, broken, whole.best_step))  # a scalar off at step 3
    assert any(not torch.equal(tested[n], params_of(again.model)[n]) for n in tested)


V1 = Path(__file__).parent / "data" / "seedlog_v1"  # written by the harness at 66f44aa (tests/data/README.md)


@pytest.mark.parametrize("method", ["mezo", "hizoo", "dizo"])
def test_a_version_1_seed_log_replays_bit_for_bit_with_its_generator(method):
    """Logs written before version 2 name no generator: they replay with torch-normal, onto the weights the
    run that wrote them ended with: bit for bit (their SHA-256, recorded then) on the CPU model that wrote
    them, and on any CPU to 1e-6 of their fingerprint (torch's vectorized normal_ may round its log and cos
    differently on another instruction set)."""
    from benchmark.replay import configs

    log = seedlog.read(V1 / f"{method}.jsonl", method)
    assert log.header["version"] == 1 and "generator" not in log.header
    cfg, hp = configs(log)
    assert hp.generator == "torch-normal"
    loaded = tiny()
    assert seedlog.weights_sha256(loaded.model) == log.header["base_sha256"]
    before = params_of(loaded.model)
    replayer = build_method(cfg, hp, loaded.model)
    replayer.restore(replay_log(replayer, log.entries, log.end["best_step"]))
    recorded = json.loads((V1 / "weights.json").read_text())
    ours = fingerprint(before, params_of(loaded.model))
    for key, value in recorded["fingerprint"][method].items():  # the same trajectory on any CPU
        assert ours[key] == pytest.approx(value, rel=1e-6), key
    cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    if cpu == recorded["cpu"]:  # bit for bit where it was written (torch's normal_ is not promised across ISAs)
        assert seedlog.weights_sha256(loaded.model) == recorded["sha256"][method]


@pytest.mark.parametrize("method", ["mezo"])
@pytest.mark.slow
def test_a_seed_log_written_with_the_cpu_kernel_replays_with_the_triton_kernel_to_rounding(method, monkeypatch):
    """The same log on the other device's kernel (Triton, interpreted here on CPU tensors): the weights after
    5 steps agree within 1e-6 of their largest magnitude (z differs by the rounding of log, sin and cos,
    4.8e-7 at most). HiZOO's fused kernel is held to its torch ops on both kernels in test_directions.py (its
    replay here measured 2e-7 of 357, and cost 25 s of interpreted Triton)."""
    from methods.zo import cpu, gpu

    scripted_dev(monkeypatch, DEV)  # the tested weights are step 5's, whatever dev the kernels' bits give
    cfg, hp = build_run(method, "toy", {**SETTINGS.get(method, {}), **MOVING.get(method, {}), "eval_every": "5"},
                        model="tiny-random-llama", steps=5, seed=1)
    _, _, splits = sample(cfg)
    loaded = tiny()
    result = train(cfg, hp, loaded, splits, CPU, progress=False)
    assert result.best_step == 5
    on_cpu = params_of(loaded.model)
    tensors = lambda *arrays: [torch.from_numpy(a) if a is not None and a.size else None for a in arrays]  # noqa: E731
    monkeypatch.setattr(cpu, "fill", lambda out, key, start: gpu.fill(*tensors(out), key, start, block=16384))
    monkeypatch.setattr(cpu, "axpy", lambda t, key, start, keep, coeff: gpu.axpy(
        *tensors(t), key, start, float(keep), float(coeff), block=16384))
    monkeypatch.setattr(cpu, "hizoo", lambda t, s, key, start, *scalars: gpu.hizoo(
        *tensors(t, s), key, start, *map(float, scalars), block=16384))
    again, threads = tiny(), torch.get_num_threads()
    torch.set_num_threads(1)  # Triton's interpreter is not thread-safe (on CUDA the engine uses no pool)
    try:
        replayer = build_method(cfg, hp, again.model)
        replayer.restore(replay_log(replayer, result.log, result.best_step))
    finally:
        torch.set_num_threads(threads)
    on_triton = params_of(again.model)
    moved = max((on_cpu[n] - params_of(tiny().model)[n]).abs().max().item() for n in on_cpu)
    size = max(w.abs().max().item() for w in on_cpu.values())
    gap = max((on_cpu[n] - on_triton[n]).abs().max().item() for n in on_cpu)
    assert moved > 1e-3 and 0 < gap <= 1e-6 * size, (moved, size, gap)  # it moved; the kernels differ by rounding


# ---- the seed log's reader -----------------------------------------------------------------------

def a_log(tmp_path) -> str:
    head = seedlog.header("mezo", "tiny-random-llama", "abc", "fp32", "cpu", "", "", {"steps": 2})
    log = seedlog.SeedLog(head, [{"eval": 0, "dev": 0.5, "best": True}, {"step": 1, "seed": 7, "grad": 0.5, "lr": 1e-3},
                                 {"step": 2, "seed": 8, "grad": -0.25, "lr": 1e-3}, {"eval": 2, "dev": 0.6, "best": True}],
                          {"end": 2, "best_step": 2, "test": 0.55})
    return log.text()


@pytest.mark.parametrize("mangle,message", [
    (lambda t: t[:-20], "line 6 is not JSON (a truncated or corrupt file)"),
    (lambda t: "", "empty file"),
    (lambda t: t.replace('"step": 2,', '"step": 3,'), "line 4: step 3 after step 1 (steps missing)"),
    (lambda t: t.replace('"grad": -0.25', '"grad": "x"'), "line 4 (step 2) lacks a number for grad"),
    (lambda t: t.replace('"version": 2', '"version": 9'), "version 9; this harness reads versions 1, 2"),
    (lambda t: t.replace("zo-bench-seed-log", "other"), "line 1 is not a zo-bench-seed-log header"),
    (lambda t: t.replace('"base_sha256": "abc", ', ""), "the header lacks base_sha256"),
    (lambda t: t.replace('"method": "mezo"', '"method": "lora"'), "method lora does not replay"),
    (lambda t: t + '{"step": 3}\n', "line 7 follows the end record"),
    (lambda t: t.replace('{"end": 2', '{"end": 5'), "line 6: the end record does not match the 2 steps logged"),
])
def test_a_bad_seed_log_is_named_in_one_line(tmp_path, mangle, message):
    good = tmp_path / "good.jsonl"
    good.write_text(a_log(tmp_path))
    log = seedlog.read(good, "f")
    assert [e["step"] for e in log.steps()] == [1, 2] and log.end["best_step"] == 2
    assert log.text() == good.read_text()  # reads back what it wrote, every float exact
    bad = tmp_path / "bad.jsonl"
    bad.write_text(mangle(good.read_text()))
    with pytest.raises(BenchmarkError, match="^seed log of f: " + message.replace("(", r"\(").replace(")", r"\)")):
        seedlog.read(bad, "f")


# ---- the real CLI: kill -9, resume, replay -------------------------------------------------------

RUN = ["--model", "tiny-random-llama", "--steps", "160", "--quiet", "--seed", "2", "--dtype", "fp32",  # auto is measured
       "--set", "num_train=32", "num_dev=16", "num_test=16", "batch_size=4", "eval_every=20"]
CLI_SETTINGS = {"mezo": ["lr=1e-3"], "hizoo": ["lr=1e-3", "hessian_smooth=1e-2"],
                "dizo": ["lr=1e-3", "projection_interval=15"], "lora": ["lr=1e-2"]}
STEADY = ("mem/", "perf/peak_", "perf/avg_", "perf/wall_s", "perf/steps_per_s", "perf/train_hours", "perf/resume_s")


@pytest.fixture
def store(tmp_path, monkeypatch):
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.setenv("BENCHMARK_CHECKPOINTS", str(tmp_path / "checkpoints"))
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    mlflow.MlflowClient().search_experiments()  # the schema made here, not raced by two children
    return tmp_path


def cli_run(method: str, out, *extra: str) -> subprocess.CompletedProcess:
    proc = bench("run", method, "rt-polarity", *RUN, *CLI_SETTINGS[method], "--save", str(out), *extra)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def kill_after_checkpoint(method: str, root, at_least: int, task: str = "rt-polarity",
                          while_alive: Callable[[str], None] | None = None) -> tuple[str, int]:
    """Start the run, kill -9 it once its checkpoint is at step `at_least` or later; (run id, that step).
    `while_alive(run_id)` runs first, with the run's process stopped (SIGSTOP): alive, holding what it holds."""
    proc = subprocess.Popen([*BENCH, "run", method, task, *RUN, *CLI_SETTINGS[method]],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ))
    try:
        deadline, step = time.time() + 300, 0
        while time.time() < deadline and proc.poll() is None and step < at_least:
            time.sleep(0.01)
            for path in glob.glob(str(root / "checkpoints" / "*" / checkpoint.STATE)):
                try:
                    step = torch.load(path, weights_only=True)["progress"]["step"]
                except Exception:  # mid-replace: the next look sees it
                    pass
        proc.send_signal(signal.SIGSTOP)
        assert 0 < step < 160, f"never caught a checkpoint mid-run (step {step})"
        run_id, = os.listdir(root / "checkpoints")
        if while_alive is not None:
            while_alive(run_id)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        proc.kill()
    return run_id, step


def histories(run_id: str) -> dict:
    from mlflow import MlflowClient

    client = MlflowClient()
    keys = [k for k in client.get_run(run_id).data.metrics if not k.startswith(STEADY)]
    return {k: sorted((m.step, m.value) for m in client.get_metric_history(run_id, k)) for k in keys}


def tensors(folder) -> dict:
    name = "adapter_model.safetensors" if (folder / "adapter_model.safetensors").exists() else "model.safetensors"
    return load_file(folder / name)


# the process boundary, MLflow's run and `benchmark replay` for the ZO method with the most state (DiZO: its
# projections); every method's resume is held bit for bit in process above, through the same checkpoint files
# (MeZO and HiZOO here too cost 90 s of a 2-core machine's test time and held nothing more; so did LOZO-M,
# whose momentum the log rebuilds, 30 s, and LoRA, whose optimizer state the in-process case holds, 30-57 s)
@pytest.mark.parametrize("method", ["dizo"])
@pytest.mark.slow
def test_kill_9_then_resume_equals_the_uninterrupted_run(method, store):
    import mlflow
    from mlflow import MlflowClient

    cli_run(method, store / "whole")
    whole_id, = (r.info.run_id for r in mlflow.search_runs(experiment_names=["adhoc"], output_format="list"))
    run_id, step = kill_after_checkpoint(method, store, at_least=40)
    resumed = cli_run(method, store / "resumed", "--resume", run_id)
    assert f"run {run_id}" in resumed.stdout
    client = MlflowClient()
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags["resumed"] == str(step)
    assert len(mlflow.search_runs(experiment_names=["adhoc"], output_format="list")) == 2  # continued, not new
    whole, again = histories(whole_id), histories(run_id)
    assert again == whole and len(whole["train/loss"]) == 160 and len(whole["eval/dev_score"]) == 9
    a, b = tensors(store / "whole"), tensors(store / "resumed")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not os.listdir(store / "checkpoints")  # removed once finished
    replayed = bench("replay", run_id, "--out", str(store / "replayed"), "--json")  # what measurements/ read
    assert replayed.returncode == 0, replayed.stderr[-3000:]
    test, out = run.data.metrics["test/score"], json.loads(replayed.stdout)
    assert (out["method"], out["model"], out["steps"]) == (method, "tiny-random-llama", 160)
    assert out["test"] == out["logged_test"] == test and out["out"] == str(store / "replayed")
    c = tensors(store / "replayed")
    assert all(torch.equal(a[k], c[k]) for k in a)
    assert run.data.metrics["perf/seed_log_bytes"] < 150 * 160  # a ZO fine-tune is kilobytes


@pytest.mark.slow
def test_a_lora_runs_saved_adapter_loads_the_peft_way(store):
    """A LoRA run's --save: peft's own `PeftModel.from_pretrained` loads it onto the base model."""
    from peft import PeftModel

    folder = store / "whole"
    cli_run("lora", folder, "--steps", "20")
    saved = tensors(folder)
    config = json.loads((folder / "adapter_config.json").read_text())
    assert config["r"] == 8 and config["lora_alpha"] == 16 and config["base_model_name_or_path"] == "tiny-random-llama"
    peft_model = PeftModel.from_pretrained(tiny().model, str(folder))
    ours = {n: p for n, p in peft_model.named_parameters() if "lora_" in n}
    assert len(ours) == len(saved) > 0
    assert all(torch.equal(ours[n.replace(".weight", ".default.weight")], t) for n, t in saved.items())


def one_error_line(proc) -> str:
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    ours = [line for line in proc.stderr.strip().splitlines() if " INFO " not in line]
    assert len(ours) == 1 and ours[0].startswith("error: "), proc.stderr[-3000:]
    return ours[0]


@pytest.mark.slow
def test_mismatched_resumes_and_replays_fail_in_one_line(store):
    from mlflow import MlflowClient

    def refused_while_alive(run_id: str) -> None:  # its process holds the run's lock: no second writer
        alive = bench("run", "mezo", "rt-polarity", *RUN, *CLI_SETTINGS["mezo"], "--resume", run_id)
        assert f"--resume {run_id}: the run is still going (process {socket.gethostname()}:" in one_error_line(alive)

    run_id, step = kill_after_checkpoint("mezo", store, at_least=20, while_alive=refused_while_alive)
    # dead, it holds nothing: each refusal below comes from checks made after the lock was taken
    state = store / "checkpoints" / run_id / checkpoint.STATE
    before = state.read_bytes()
    other_model = bench("run", "mezo", "rt-polarity", *RUN, *CLI_SETTINGS["mezo"], "--model", "tiny-random-opt",
                        "--resume", run_id)
    assert "the run had model='tiny-random-llama' (this command: 'tiny-random-opt')" in one_error_line(other_model)
    other_dtype = bench("run", "mezo", "rt-polarity", *RUN, *CLI_SETTINGS["mezo"], "--dtype", "bf16", "--resume", run_id)
    assert f"--resume {run_id}: the checkpoint's dtype is " in one_error_line(other_dtype)
    other_lr = bench("run", "mezo", "rt-polarity", *RUN, "--set", "lr=1e-4", "--resume", run_id)
    assert "the run had lr=0.001 (this command: 0.0001)" in one_error_line(other_lr)
    elsewhere = bench("run", "mezo", "rt-polarity", *RUN, *CLI_SETTINGS["mezo"], "--experiment", "b", "--resume", run_id)
    assert "the run had experiment='adhoc' (this command: 'b')" in one_error_line(elsewhere)
    assert MlflowClient().get_experiment_by_name("b") is None  # refused before the store was touched
    unknown = bench("run", "mezo", "rt-polarity", *RUN, *CLI_SETTINGS["mezo"], "--resume", "0123abc")
    assert "--resume 0123abc: no checkpoint in " in one_error_line(unknown)
    assert state.read_bytes() == before and MlflowClient().get_run(run_id).data.tags.get("resumed") is None
    corrupt = store / "checkpoints" / run_id / seedlog.FILE
    text = corrupt.read_text().splitlines()
    corrupt.write_text("\n".join(text[:5] + [text[5][:30]] + text[6:]) + "\n")
    truncated = bench("run", "mezo", "rt-polarity", *RUN, *CLI_SETTINGS["mezo"], "--resume", run_id)
    assert f"seed log of run {run_id}: line 6 is not JSON (a truncated or corrupt file)" in one_error_line(truncated)
    # replay: a killed run has no log artifact yet; a log for other base weights is refused before any step
    assert "has no seed_log.jsonl: only finished runs" in one_error_line(bench("replay", run_id))
    log = seedlog.SeedLog(json.loads(text[0]), [json.loads(line) for line in text[1:5]])
    log.end = {"end": 3, "best_step": 0, "test": 0.5}
    log.entries = [e for e in log.entries if e.get("step", e.get("eval", 0)) <= 3]
    log.header["base_sha256"] = "f" * 64
    log.write(store / "other_base.jsonl")
    assert "are not the run's (ffffffffffff)" in one_error_line(bench("replay", str(store / "other_base.jsonl")))


@pytest.mark.slow
def test_a_task_file_edited_since_the_run_is_refused_by_resume_and_replay(store):
    """A task file's hash (its YAML and its data) is in the checkpoint and the seed log: resuming or replaying
    on an edited data file would train or test on other examples, and is refused in one line."""
    rows = [{**ROWS[i % len(ROWS)], "text": f"item {i}"} for i in range(80)]
    path = task_file(store, rows=rows)
    finished = bench("run", "mezo", path, *RUN[:2], "--steps", "4", "--json", "--dtype", "fp32", "--set",
                     "num_train=32", "num_dev=16", "num_test=16", "batch_size=4", "eval_every=2")
    assert finished.returncode == 0, finished.stderr[-3000:]
    done_id = json.loads(finished.stdout)["run_id"]
    run_id, _ = kill_after_checkpoint("mezo", store, at_least=20, task=path)
    write_rows(store / "train.jsonl", [{**rows[0], "text": "edited"}] + rows[1:], "json")
    resumed = bench("run", "mezo", path, *RUN, *CLI_SETTINGS["mezo"], "--resume", run_id)
    assert f"--resume {run_id}: the checkpoint's task file (SHA-256) is " in one_error_line(resumed)
    assert f"task file {path} has changed since the run" in one_error_line(bench("replay", done_id))


@pytest.mark.parametrize("method", [m for m in HELD if METHODS.get(m).replays])
def test_steps_under_autocast_replay_outside_it_bit_for_bit(method):
    """A bf16-mixed run steps inside the autocast context; `benchmark replay` redoes the updates outside it:
    an update, and every factor or moment it uses, must not depend on autocast (LOZO-M's momentum carry and
    SubZero's core product did, before `lowrank.exact`)."""
    from tests.helpers import Loop, make

    fields = {f.name for f in dataclasses.fields(METHODS.get(method).Hparams)}
    sets = {key: "2" for key in ("projection_interval", "interval") if key in fields}  # a round, a redraw, a carry
    loaded, again = tiny(), tiny()
    trainer, loop = make(method, loaded.model, seed=3, **sets), Loop(loaded)
    with torch.autocast("cpu", dtype=torch.bfloat16, cache_enabled=False):
        records = [trainer.step(step, loop.loss_fn(), loop.loss_fn).record for step in range(4)]
    replayer = make(method, again.model, seed=3, **sets)
    for step, record in enumerate(records):
        replayer.replay(step, record)
    ran, replayed = params_of(loaded.model), params_of(again.model)
    assert all(torch.equal(ran[n], replayed[n]) for n in ran), method
