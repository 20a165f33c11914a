"""One run of each ZO optimizer on rt-polarity, side by side, into one committed record (README, "Every ZO
optimizer").

`python -m benchmark.measurements.zo_optimizers METHOD=LR[,KEY=VALUE...] ... [--steps 300] [--seed 0]
[--record NAME]`: each `benchmark run METHOD rt-polarity` (smollm2-135m, bf16-mixed where the CPU has it,
batch 16, dev 500 every 50 steps, test 1000; KEY=VALUE settings override these) in turn, through the real
CLI; as each finishes its dev curve, test score, rate and peak join
`reports/results/zo_optimizers/rt-polarity_STEPS_steps_seedSEED.json` (or NAME.json: a new machine's sitting
in a record of its own, since a record names one CPU), so a killed sitting loses at most the run under way, and
a method already recorded at that rate and settings is skipped (one recorded with others is kept: the new run
is recorded as METHOD@LR[,KEY=VALUE...]). `--plot NAME [NAME ...] --out FILE.png`: the dev curves of the runs in those records,
one panel, for a note or a README.
"""
from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
from pathlib import Path

from benchmark.core import names
from benchmark.core.store import client
from benchmark.measure import cpu_name

OUT = Path(__file__).resolve().parents[2] / "reports" / "results" / "zo_optimizers"
SETS = ["batch_size=16", "num_dev=500", "num_test=1000", "eval_every=50", "eval_batch_size=64"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="*", help="METHOD=LR[,KEY=VALUE...] (more settings of the method: anchor_lr=3e-4)")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--record", help="the record's file name (default rt-polarity_STEPS_steps_seedSEED)")
    ap.add_argument("--plot", nargs="+", metavar="NAME", help="plot these records' dev curves instead of running")
    ap.add_argument("--out", help="--plot: the PNG to write")
    args = ap.parse_args()
    if args.plot:
        plot([OUT / f"{name}.json" for name in args.plot], Path(args.out))
        return
    path = OUT / f"{args.record or f'rt-polarity_{args.steps}_steps_seed{args.seed}'}.json"
    record = json.loads(path.read_text()) if path.exists() else {
        "what": f"{args.steps} steps, rt-polarity, smollm2-135m, seed {args.seed}, batch 16, "
                "dev 500 every 50, test 1000",
        "cpu": cpu_name(), "date": datetime.date.today().isoformat(),
        "command": f"benchmark run METHOD rt-polarity --steps {args.steps} --seed {args.seed} --set lr=LR "
                   + " ".join(SETS), "runs": {}}
    for spec in args.runs:
        method, rest = spec.split("=", 1)
        lr, *more = rest.split(",")
        held = record["runs"].get(method)
        same = held is None or (held["lr"], held.get("sets", [])) == (lr, more)
        key = method if same else f"{method}@{','.join([lr, *more])}"  # a second rate or other settings
        if key in record["runs"]:
            print(f"{method} at lr {lr}: recorded already", flush=True)
            continue
        cmd = [sys.executable, "-m", "benchmark.cli", "run", method, "rt-polarity", "--steps", str(args.steps),
               "--seed", str(args.seed), "--json", "--experiment", "zo-optimizers", "--set", f"lr={lr}", *SETS, *more]
        print(" ".join(cmd[2:]), flush=True)
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode:
            print(f"{method}: failed\n{proc.stderr[-2000:]}", flush=True)
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        history = client().get_metric_history(r["run_id"], names.DEV_SCORE)
        record["runs"][key] = {
            "lr": lr, **({"sets": more} if more else {}),
            "dev_curve": [[m.step, m.value] for m in sorted(history, key=lambda m: m.step)],
            "dev_best": r[names.DEV_BEST], "best_step": r[names.DEV_BEST_STEP], "test": r[names.TEST_SCORE],
            "steps_per_s": r[names.STEPS_PER_S], "peak_memory_gb": r[names.PEAK_MEMORY],
            "forward_passes": r.get(names.FORWARD_PASSES), "git_commit": subprocess.run(
                ["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True).stdout.strip()}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record, indent=1) + "\n")
        print(f"{method}: dev {r[names.DEV_BEST]:.3f} test {r[names.TEST_SCORE]:.3f}", flush=True)


def plot(paths: list[Path], out: Path) -> None:
    """Dev accuracy against step for every run of the records at `paths` (label: method, rate, forwards)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4.2))
    cpus = set()
    for path in paths:
        record = json.loads(path.read_text())
        cpus.add(record["cpu"])
        for key, run in record["runs"].items():
            steps, dev = zip(*run["dev_curve"])
            sets = "".join(f", {s}" for s in run.get("sets", []) if not s.startswith("eval_every"))
            label = f"{key.split('@')[0]} (lr {run['lr']}{sets}; {run.get('forward_passes', '?')} forwards)"
            ax.plot(steps, dev, marker="o", label=label)
    ax.set(xlabel="step", ylabel="dev accuracy (500 examples)")
    ax.set_title(f"rt-polarity, smollm2-135m, one seed (an anecdote)\n{'; '.join(sorted(cpus))}", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
