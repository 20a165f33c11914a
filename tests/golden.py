"""Golden trajectories: the first steps of every trained method on the tiny model, recorded in the repository
(`tests/golden.json`) so that a change of z or of an update's arithmetic shows up as a failing test and a
diff in review, not only as a loss that still goes down (torchtune's recipe tests do this).

Re-record on purpose, after a change meant to move them, and commit the diff with the reason:
    python -m tests.golden                 # every trained method
    python -m tests.golden zo-muon lozo-m  # these methods only (the others' records are kept)
    python -m tests.golden --check [METHOD ...]  # compare with the records; exit 1 and one line a mismatch
A trajectory is 6 steps of a method's toy settings on tiny-random-llama (seed 0, batch 8, one thread, DiZO
projecting every 3 steps): per step the loss and the method's metrics (a ZO method's projected gradient),
then a fingerprint of the weights (their sum, their dot product with a fixed random vector and the norm of
what they moved, in float64).

Tolerances (`mismatches`) are what a CPU's last-bit rounding can do, on any x86 kind (AVX2, AVX-512, AMX; the
suite forces the lower ones, tests/test_golden.py), and what a new z or a changed update does not stay inside:
- a loss to 1e-5 relative: a few last-bit changes of float32 sums over the batch;
- a metric to 1e-3 absolute (a projected gradient is a loss difference over 2 eps: a last-bit change of a loss
  moves it by about 3e-5 at eps 1e-3), HiZOO's curvature by its own bound (`metric_tolerance`);
- `moved` and `sum` to 1e-3 relative: each step moves the weights by lr g |D|, and g is known to the metric's
  tolerance, so the weights are known to a small share of what they moved;
- `dot`, the weights against a fixed standard normal probe, is a sum with heavy cancellation (0.106 for LOZO-M,
  from terms whose squares sum to 10^4), so a relative bound on it says nothing: a weight difference d moves it
  by d . probe, a N(0, |d|^2) draw for a probe independent of d. With |d| inside the 1e-3 |moved| that `moved`
  itself is held to, |delta dot| <= 4e-3 |moved| but one time in 16,000. Measured (2026-12-07, Intel Xeon,
  AVX-512): LOZO-M's dot moved 6.6e-5 under AVX-512 and 2.9e-4 under forced AVX2 (its bound: 1.5e-2), where the
  relative bound of 1e-3 (1.1e-4) failed it on an AVX2-only AMD EPYC.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from benchmark.core import names
from methods.registry import METHODS
from tests.helpers import TRAINED, Loop, make, params_of, tiny

FILE = Path(__file__).with_name("golden.json")
STEPS = 6
SETS = {"dizo": {"projection_interval": "3"}, "dizo-fo": {"projection_interval": "3"},
        "dizo-lora": {"projection_interval": "3"}, "dizo-fo-lora": {"projection_interval": "3"}}
LOSS_REL, METRIC_ABS, WEIGHTS_REL, DOT_SIGMAS = 1e-5, 1e-3, 1e-3, 4.0


def fingerprint(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> dict[str, float]:
    flat = torch.cat([after[n].double().flatten() for n in sorted(after)])
    moved = torch.cat([(after[n].double() - before[n].double()).flatten() for n in sorted(after)])
    probe = torch.randn(flat.numel(), generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    return {"sum": flat.sum().item(), "dot": (flat @ probe).item(), "moved": moved.norm().item()}


def trajectory(method: str) -> dict:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        loaded = tiny()
        trainer = make(method, loaded.model, **SETS.get(method, {}))
        before = params_of(loaded.model)  # after LoRA's adapters are in
        loop = Loop(loaded)
        steps = []
        for step in range(STEPS):
            loaded.model.train(trainer.first_order)
            out = trainer.step(step, loop.loss_fn(), loop.loss_fn)
            steps.append({"loss": out.loss, **{k: v for k, v in sorted(out.metrics.items())}})
        return {"steps": steps, "weights": fingerprint(before, params_of(loaded.model))}
    finally:
        torch.set_num_threads(threads)


def metric_tolerance(key: str, loss: float, eps: float) -> float:
    """A metric's absolute tolerance. HiZOO's curvature is a second difference of three losses over 2 eps^2:
    one last-bit change of a loss (2^-24 of it) moves it by loss 2^-24 / (2 eps^2), 0.02 at eps 1e-3 and loss
    0.69. On an AMD EPYC HiZOO read 27.150 where the Xeon recorded 27.061 (4 such changes), HiZOO-LoRA 1.8001
    for 1.7977 at eps 1e-2 (12); allowed: 32, a few percent at most, where a new z moves it by its size."""
    return 32 * abs(loss) * 2**-24 / (2 * eps**2) if key == names.CURVATURE else METRIC_ABS


def _off(ours: float, theirs: float, rel: float, abs_: float = 0.0) -> bool:
    return abs(ours - theirs) > max(rel * abs(theirs), abs_)


def mismatches(method: str, ours: dict, theirs: dict) -> list[str]:
    """Where `ours` leaves the recorded trajectory `theirs` by more than rounding can (the module docstring)."""
    eps = getattr(METHODS.get(method).Hparams(), "eps", 0.0)
    out = []
    if len(ours["steps"]) != len(theirs["steps"]):
        return [f"{method}: {len(ours['steps'])} steps, recorded {len(theirs['steps'])}"]
    for step, (a, b) in enumerate(zip(ours["steps"], theirs["steps"])):
        if a.keys() != b.keys():
            out.append(f"{method} step {step}: keys {sorted(a)}, recorded {sorted(b)}")
            continue
        for key in a:
            rel, abs_ = (LOSS_REL, 0.0) if key == "loss" else (1e-3, metric_tolerance(key, b["loss"], eps))
            if _off(a[key], b[key], rel, abs_):
                out.append(f"{method} step {step} {key}: {a[key]!r}, recorded {b[key]!r}")
    mine, recorded = ours["weights"], theirs["weights"]
    for key in ("sum", "moved"):
        if _off(mine[key], recorded[key], WEIGHTS_REL):
            out.append(f"{method} weights {key}: {mine[key]!r}, recorded {recorded[key]!r}")
    if _off(mine["dot"], recorded["dot"], 0.0, DOT_SIGMAS * WEIGHTS_REL * recorded["moved"]):
        out.append(f"{method} weights dot: {mine['dot']!r}, recorded {recorded['dot']!r} "
                   f"(bound {DOT_SIGMAS * WEIGHTS_REL * recorded['moved']:.2e})")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.golden", description=__doc__.split("\n\n")[0])
    parser.add_argument("methods", nargs="*", help="methods to record or check (default: every trained method)")
    parser.add_argument("--check", action="store_true", help="compare with the records instead of recording")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.methods) - set(TRAINED))
    if unknown:
        print(f"unknown method {unknown[0]} (trained methods: {', '.join(TRAINED)})", file=sys.stderr)
        return 2
    chosen = args.methods or TRAINED
    recorded = json.loads(FILE.read_text()) if FILE.exists() else {}
    if args.check:
        lines = [line for m in chosen for line in
                 (mismatches(m, trajectory(m), recorded[m]) if m in recorded else [f"{m}: no recorded trajectory"])]
        print("\n".join(lines) or f"{len(chosen)} trajectories as recorded ({torch.backends.cpu.get_cpu_capability()})")
        return 1 if lines else 0
    recorded.update({m: trajectory(m) for m in chosen})
    FILE.write_text(json.dumps({m: recorded[m] for m in sorted(recorded) if m in TRAINED}, indent=1) + "\n")
    print(f"recorded {len(chosen)} trajectories in {FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
