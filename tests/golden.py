"""Golden trajectories: the first steps of every trained method on the tiny model, recorded in the repository
(`tests/golden.json`) so that a change of z or of an update's arithmetic shows up as a failing test and a
diff in review, not only as a loss that still goes down (torchtune's recipe tests do this).

Re-record on purpose, after a change meant to move them, and commit the diff with the reason:
    python -m tests.golden
A trajectory is 6 steps of a method's toy settings on tiny-random-llama (seed 0, batch 8, one thread, DiZO
projecting every 3 steps): per step the loss and the method's metrics (a ZO method's projected gradient),
then a fingerprint of the weights (their sum, their dot product with a fixed random vector and the norm of
what they moved, in float64). Compared with tolerances that a CPU's last-bit rounding stays inside and a new z
or a changed update does not (tests/test_golden.py)."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from tests.helpers import TRAINED, Loop, make, params_of, tiny

FILE = Path(__file__).with_name("golden.json")
STEPS = 6
SETS = {"dizo": {"projection_interval": "3"}, "dizo-fo": {"projection_interval": "3"},
        "dizo-lora": {"projection_interval": "3"}, "dizo-fo-lora": {"projection_interval": "3"}}


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


def main() -> None:
    FILE.write_text(json.dumps({m: trajectory(m) for m in TRAINED}, indent=1) + "\n")
    print(f"recorded {len(TRAINED)} trajectories in {FILE}")


if __name__ == "__main__":
    main()
