"""A ZO method whose matrices take a factored direction (LOZO's U V^T, SubZero's U Z V^T; `methods/zo/lowrank.py`
draws the factors) and whose other parameters take a full Gaussian z: the two probes, stacked or one forward
each, and the update theta <- keep theta - lr g D, shared by LOZO and SubZero."""
from __future__ import annotations

from typing import Any, Callable, Sequence

import torch

from benchmark.core import names
from methods.base import Fresh, LossFn
from methods.zo import lowrank, mix
from methods.zo.method import ZOMethod

Factors = dict[int, tuple[torch.Tensor, torch.Tensor, "torch.Size | None"]]  # i -> (left, right, matrix shape)


class Factored(ZOMethod):
    """Takes `TwoPointHparams` plus `interval` (steps between redraws of the kept factors); a subclass draws
    the kept factors (`draw`), the step's factors (`factors`) and says which parameters are matrices
    (`is_matrix`: the released rule of its family)."""

    record_keys = ("seed", "grad", "lr")

    def __init__(self, hp: Any, model: torch.nn.Module, schedule: Callable[[int], float], seed: int) -> None:
        super().__init__(hp, model, schedule, seed)
        self.matrix = {i for i, p in enumerate(self.engine.params) if self.is_matrix(p)}
        self.others = set(range(len(self.engine.params))) - self.matrix
        self._drawn: tuple[int, dict[int, Any]] = (-1, {})
        self._probed: tuple[int, Factors] = (-1, {})  # the last step's probe factors, reused by its update

    @staticmethod
    def is_matrix(p: torch.Tensor) -> bool:
        """Whether a parameter takes a factored direction: a 2-d one (LOZO's `ndim >= 2`, where a >2-d
        parameter would fail on `size(0), size(1)`)."""
        return p.dim() == 2

    def redraw(self, step: int) -> int:
        """The last step at or before `step` that redrew the kept factors (every `interval` steps)."""
        return step - step % self.hp.interval

    def kept(self, step: int) -> dict[int, Any]:
        """The factors kept between redraws (LOZO's V, SubZero's U and V) at this step: `draw(seed)` at the
        redraw step's seed, a function of the run seed and that step, drawn once per interval."""
        at = self.redraw(step)
        if self._drawn[0] != at:
            self._drawn = (at, self.draw(mix(self.seed, at)))
        return self._drawn[1]

    def draw(self, seed: int) -> dict[int, Any]:
        """Each matrix's kept factors at a redraw step's seed."""
        raise NotImplementedError

    def factors(self, step: int, seed: int) -> Factors:
        """Each matrix parameter's (left, right, shape): its direction is left @ right, viewed as `shape`
        (None: the parameter's own)."""
        raise NotImplementedError

    def update_seed(self, step: int, seed: int) -> int:
        """The seed the step's update draws its directions with (the probes': `seed`)."""
        return seed

    def view(self, i: int, shape: torch.Size | None, rows: slice) -> tuple[torch.Tensor, slice]:
        """(rows `rows` of parameter i, the factor's rows for them); a reshaped matrix is taken whole."""
        p = self.engine.params[i]
        return (p[rows], rows) if shape is None else (p.view(shape), slice(None))

    def variants(self, seed: int, factors: Factors, signs: Sequence[int]):
        """The variants theta + signs[k] eps D (D: left @ right for a matrix, z(seed) for the others)."""
        eps, engine = self.hp.eps, self.engine

        def make(i: int, rows: slice, dtype: torch.dtype | None, which: Sequence[int]) -> list[torch.Tensor]:
            wanted = [signs[k] for k in which]
            if i not in factors:
                plus, minus = engine.pair(seed, eps, None, i, rows, dtype)
                pair = {1: plus, -1: minus}
                for s in {1, -1} - set(wanted):
                    engine.give_back(pair[s])
                return [pair[s] for s in wanted]
            left, right, shape = factors[i]
            theta, part = self.view(i, shape, rows)
            out = []
            for s in wanted:
                t = engine.borrow(i, rows)
                lowrank.probe(theta, left[part], right, s * eps, t if shape is None else t.view(shape))
                out.append(t)
            return out

        return make

    def estimate(self, step: int, seed: int, loss_fn: LossFn, fresh: Fresh | None) -> tuple[dict, float, dict]:
        factors = self.factors(step, seed)
        loss_plus, loss_minus = self.score(loss_fn, 2, self.variants(seed, factors, (1, -1)), self.hp.dual_forward)
        self._probed = (step, factors)
        record = {"seed": seed, "grad": (loss_plus - loss_minus) / (2 * self.hp.eps),
                  "lr": self.hp.lr * self.schedule(step)}
        return record, (loss_plus + loss_minus) / 2, {names.PROJECTED_GRAD: record["grad"]}

    def forwards(self) -> int:
        return 2

    def update_factors(self, step: int, record: dict[str, Any]) -> tuple[int, Factors]:
        """The update's seed and factors: the probes' own where the step updates along them (kept from its
        `estimate`: not drawn twice), else drawn at the update's seed."""
        seed = self.update_seed(step, record["seed"])
        if seed == record["seed"] and self._probed[0] == step:
            return seed, self._probed[1]
        return seed, self.factors(step, seed)

    def descend(self, step: int, record: dict[str, Any]) -> None:
        """theta <- keep theta - lr g D (D along the update's directions), logged for rollback."""
        seed, factors = self.update_factors(step, record)
        self.move(seed, factors, record)
        self.log(lambda: self.move(seed, self.factors(step, seed), record, undo=True))  # redrawn: not held

    @torch.no_grad()
    def move(self, seed: int, factors: Factors, record: dict[str, Any], undo: bool = False) -> None:
        lr = record["lr"]
        coeff, keep = lr * record["grad"], self.keep(lr)
        for i, (left, right, shape) in factors.items():
            theta, _ = self.view(i, shape, slice(None))
            lowrank.axpy(theta, left, right, keep[i], coeff, undo)
        if self.others:
            self.engine.directions.axpy(seed, keep, [coeff] * len(keep), undo, indices=self.others)
