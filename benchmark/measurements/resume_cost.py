"""What replay and resume cost, measured through the real CLI (README, "Replay and resume").

`python -m benchmark.measurements.resume_cost [--model smollm2-135m] [--steps 1000] [--killed-steps 200]`, one after the
other, nothing else running:
1. a `killed-steps` MeZO run, uninterrupted: its wall time;
2. the same run killed (-9) once its checkpoint is at 3/4 of the way (evaluations every quarter), then
   `--resume`d: the two processes' wall time against (1), the steps redone, the run's `perf/resume_s`;
3. a `steps` MeZO run: its seed log's size and training seconds, then `benchmark replay` of it: the replay's
   own seconds (the weights rebuilt; loading and scoring test aside) and its wall time.
Each result is printed as one JSON line as it comes.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from benchmark import checkpoint
from benchmark.core import names
from benchmark.core.store import client

EXPERIMENT = "resume-cost"


def command(args: argparse.Namespace, steps: int) -> list[str]:
    return [sys.executable, "-m", "benchmark.cli", "run", "mezo", "rt-polarity", "--model", args.model, "--steps",
            str(steps), "--json", "--experiment", EXPERIMENT, "--set", "lr=3e-5", "eps=1e-3", "num_dev=200",
            "num_test=500", "eval_batch_size=64", f"eval_every={max(1, steps // 4)}"]


def timed(cmd: list[str]) -> tuple[float, dict]:
    """The command's wall time and its `--json` result; a failed command ends the measurement with its error."""
    began = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-2000:])
    return time.time() - began, json.loads(proc.stdout.strip().splitlines()[-1])


def report(row: dict) -> None:
    print(json.dumps(row), flush=True)


def killed(args: argparse.Namespace) -> None:
    n = args.killed_steps
    whole_s, _ = timed(command(args, n))
    began, at = time.time(), 3 * max(1, n // 4)
    known = set(glob.glob(str(checkpoint.checkpoint_root() / "*")))
    proc = subprocess.Popen(command(args, n), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    step = 0
    while proc.poll() is None and step < at:
        time.sleep(0.05)
        for path in set(glob.glob(str(checkpoint.checkpoint_root() / "*"))) - known:
            if checkpoint.exists(Path(path).name):  # written atomically: there whole, or not yet
                step = torch.load(Path(path) / checkpoint.STATE, weights_only=True)["progress"]["step"]
    time.sleep(args.after_s)  # some steps past the checkpoint: work the resume must redo
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first_s = time.time() - began
    (rid,) = [Path(p).name for p in set(glob.glob(str(checkpoint.checkpoint_root() / "*"))) - known]
    second_s, _ = timed([*command(args, n), "--resume", rid])
    metrics = client().get_run(rid).data.metrics
    report({"what": f"{n}-step run killed {args.after_s:.0f} s after its step-{step} checkpoint, then resumed",
            "uninterrupted_s": whole_s, "killed_process_s": first_s, "resumed_process_s": second_s,
            "resume_s": metrics[names.RESUME_S], "overhead_s": first_s + second_s - whole_s})


def replayed(args: argparse.Namespace) -> None:
    wall_s, out = timed(command(args, args.steps))
    rid = out["run_id"]
    metrics = client().get_run(rid).data.metrics
    replay_wall_s, replay_out = timed([sys.executable, "-m", "benchmark.cli", "replay", rid, "--json"])
    seconds = replay_out["seconds"]
    train_s = metrics[names.TRAIN_HOURS] * 3600
    report({"what": f"{args.steps}-step run, its seed log and its replay", "seed_log_bytes": metrics[names.SEED_LOG_BYTES],
            "bytes_per_1000_steps": metrics[names.SEED_LOG_BYTES] * 1000 / args.steps, "train_s": train_s,
            "run_wall_s": wall_s, "replay_s": seconds, "replay_over_train": seconds / train_s,
            "replay_wall_s": replay_wall_s, "replay": replay_out})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--killed-steps", type=int, default=200)
    p.add_argument("--after-s", type=float, default=20.0, help="seconds between the checkpoint and the kill")
    args = p.parse_args()
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    killed(args)
    replayed(args)


if __name__ == "__main__":
    main()
