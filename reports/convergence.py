"""Steps and hours to a target dev score, relative to MeZO on the same cell (the paper's
"train iterations %" and "GPU hours %" columns, Table 6 and Figure 4).

TARGET, in one place: a run converges at the first evaluation after training began (step > 0) whose
dev score reaches 99% of the best dev score MeZO reached after step 0 on the same cell (model, task),
so MeZO itself is 100% by construction. Its train hours to that point are steps / (steps per second)
/ 3600 x devices, from the run's measured training throughput.
"""
from __future__ import annotations

from dataclasses import dataclass

TARGET_FRACTION = 0.99
TARGET_DEFINITION = (f"Converged = first evaluation after step 0 with dev score >= {TARGET_FRACTION:.0%} of MeZO's "
                     "best dev score after step 0 on the same cell; hours = steps to that point / measured "
                     "training steps per second.")


@dataclass(frozen=True)
class Curve:
    steps: list[int]  # evaluation steps, ascending
    dev: list[float]
    steps_per_s: float
    forwards_per_step: float
    devices: int = 1

    def steps_to(self, target: float) -> int | None:
        return next((s for s, d in zip(self.steps, self.dev) if s > 0 and d >= target), None)

    def hours_to(self, target: float) -> float | None:
        steps = self.steps_to(target)
        return None if steps is None else self.devices * steps / self.steps_per_s / 3600


def target(mezo: Curve) -> float:
    """inf when MeZO has no evaluation after step 0 (nothing reaches it)."""
    return TARGET_FRACTION * max((d for s, d in zip(mezo.steps, mezo.dev) if s > 0), default=float("inf"))


def relative(curve: Curve, mezo: Curve) -> dict[str, float | None]:
    """Iterations, forward passes and hours to the target, in percent of MeZO's."""
    goal = target(mezo)
    out: dict[str, float | None] = {}
    steps, mezo_steps = curve.steps_to(goal), mezo.steps_to(goal)
    hours, mezo_hours = curve.hours_to(goal), mezo.hours_to(goal)
    out["train_iter_pct"] = None if steps is None or not mezo_steps else 100 * steps / mezo_steps
    out["forward_pct"] = None if out["train_iter_pct"] is None else \
        out["train_iter_pct"] * curve.forwards_per_step / mezo.forwards_per_step
    out["gpu_hours_pct"] = None if hours is None or not mezo_hours else 100 * hours / mezo_hours
    return out
