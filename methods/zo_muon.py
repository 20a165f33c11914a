"""ZO-Muon (OPTML-Group/ZO-Muon, 2026): zeroth-order estimates in a random low-dimensional subspace per matrix,
orthogonalised as Muon does. Released code: `llm/LowDimTrainer.py`, `_sample_orthogonal_P`,
`lowdim_zo_perturb_parameters`, `lowdim_zo_step`, `lowdim_zo_update`, `zeropower_via_newtonschulz5`.

A matrix W (m x n) is probed along P u: P (m x r) the orthonormal Q of a Gaussian's QR, its columns' signs set by
the signs of R's diagonal (Haar-distributed), redrawn at every step with step % interval == 0 and kept between;
u (r x n) Gaussian per sample. Every other parameter is probed along a full Gaussian z. Two modes:
- several samples (`multiple_sample=true`, the ZO-Muon command: NUM_SAMPLES=4): f(theta) and N one-sided probes
  f(theta + eps P u_k), g_k = (f_k - f(theta)) / eps; N + 1 forwards a step, the loss logged is f(theta);
- one sample (false: Subspace-MeZO's): f(theta +- eps P u), g = (f+ - f-) / (2 eps); 2 forwards.
The update: R = (1/N) sum_k g_k u_k (r x n), then `optimizer` muon: G = P NS5(R), NS5 five Newton-Schulz steps of
the quintic (3.4445, -4.7750, 2.0315) after scaling R to unit Frobenius norm (+1e-7) (the orthogonal factor of
R, approximately); muon_svd: G = P U V^T of R's SVD; sgd: G = P R. W <- W - lr (G + wd W). A non-matrix
parameter steps by the average g_k z_k at a fixed 1e-7, not the learning rate (`vector_lr`, the released
quirk kept by default), with the same decay. Defaults: the ZO-Muon command of `llm/README.md` (OPT=muon,
MULTIPLE_SAMPLE=True, NUM_SAMPLES=4, RANK=64, STEP_INTERVAL=100, LR=1e-2, EPS=1e-3) at a constant rate
(`--lr_scheduler_type constant`); `llm/scripts/lowdim.sh`'s own defaults (RANK=2, OPT=sgd, one sample) are its
Subspace-MeZO form: `optimizer=sgd multiple_sample=false rank=2`.

Memory: P per matrix (m x r) is held across steps; u and z are regenerated from their seeds where the released
code saves every sample's u (N r n per matrix) and z (N copies of every vector parameter) until the update.

Departures, each with its reason:
- P, u and z from our generator and (run seed, step, sample) seeds (`methods/zo/lowrank.py`'s factor streams):
  replayable from the seed log and the same on CPU and GPU; the released code draws them with `torch.randn`
  after `torch.manual_seed` of a numpy draw (P from the global stream as the last step left it).
- A matrix with fewer rows than the rank takes r = its rows: the released QR then returns an m x m P and
  `P @ u` (u: r x n) fails, as for LoRA's A (8 x hidden) at RANK=64.
- R and its orthogonalisation in float32 at least (autocast off), cast to the weights' dtype for the update;
  the released code computes them in the weights' dtype (fp16 in its runs).
- The decay rule is the harness's (not biases, not norm modules); the default decay is 0, as released.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch

from benchmark.core import names
from benchmark.core.settings import one_of, param, positive
from methods.base import Fresh, LossFn
from methods.lora import with_lora
from methods.registry import register_method
from methods.zo import lowrank, mix
from methods.zo.factored import Factored
from methods.zo.method import ZOHparams

P = 4  # the tag of a matrix's subspace basis (U = 1 is each sample's u)
NS5 = (3.4445, -4.7750, 2.0315)  # the quintic's coefficients
NS5_STEPS = 5


@dataclass
class ZOMuonHparams(ZOHparams):
    lr: float = param(1e-2, "learning rate of the matrices", positive, "> 0")
    eps: float = param(1e-3, "perturbation scale epsilon", positive, "> 0")
    rank: int = param(64, "rank r of each matrix's subspace (at most its rows)", positive, "> 0")
    interval: int = param(100, "steps between redraws of the subspaces P", positive, "> 0")
    samples: int = param(4, "probes a step (N; multiple_sample only)", positive, "> 0")
    multiple_sample: bool = param(True, "N one-sided probes against f(theta) (false: one two-sided probe, "
                                        "Subspace-MeZO's)")
    optimizer: str = param("muon", "muon (Newton-Schulz) | muon_svd (the SVD's orthogonal factor) | sgd (none)",
                           *one_of("muon", "muon_svd", "sgd"))
    vector_lr: float | None = param(1e-7, "step size of the non-matrix parameters (the released fixed 1e-7); none: lr",
                                    lambda x: x is None or x > 0, "> 0 or none")
    stacked: bool = param(True, "a step's forwards as one forward on the batch stacked (false: one forward each; "
                                "on a GPU the run falls back to it when the stack does not fit)")


def newton_schulz(r: torch.Tensor) -> torch.Tensor:
    """The orthogonal factor of r, approximately: NS5_STEPS steps of X <- a X + (b A + c A^2) X, A = X X^T, from
    X = r / (|r|_F + 1e-7), on the wide orientation (rows <= cols)."""
    tall = r.shape[0] > r.shape[1]
    x = r.t() if tall else r
    x = x / (torch.linalg.matrix_norm(x) + 1e-7)
    a, b, c = NS5
    for _ in range(NS5_STEPS):
        gram = x @ x.t()
        x = torch.addmm(x, torch.addmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)
    return x.t() if tall else x


def svd_orthogonal(r: torch.Tensor) -> torch.Tensor:
    """U V^T of r's thin SVD."""
    u, _, vh = torch.linalg.svd(r, full_matrices=False)
    return u @ vh


ORTHOGONALISE = {"muon": newton_schulz, "muon_svd": svd_orthogonal, "sgd": lambda r: r}


@register_method("zo-muon")
class ZOMuon(Factored):
    """N probes along P u_k in a random subspace per matrix; the averaged estimate orthogonalised (Muon)."""

    Hparams = ZOMuonHparams
    record_keys = ("seed", "grads", "lr")
    toy = {"lr": "3e-2", "rank": "4", "interval": "20", "vector_lr": "none"}

    @staticmethod
    def is_matrix(p: torch.Tensor) -> bool:
        """The released `param.data.ndim >= 2` (a >2-d parameter would fail on `m, n = shape` there)."""
        return p.dim() == 2

    def rank(self, i: int) -> int:
        return min(self.hp.rank, self.engine.params[i].shape[0])

    def draw(self, seed: int) -> dict[int, torch.Tensor]:
        """P (m x r) of every matrix: Q of a Gaussian's QR, columns signed by R's diagonal (0 counts as +)."""
        out = {}
        for i in sorted(self.matrix):
            g = lowrank.gaussian(self.engine.directions, seed, P, i, self.engine.params[i].shape[0], self.rank(i))
            with lowrank.exact(g):
                q, r = torch.linalg.qr(g)
                out[i] = q * torch.where(torch.diagonal(r) < 0, -1.0, 1.0)
        return out

    def seeds(self, seed: int) -> list[int]:
        return [mix(seed, k) for k in range(self.hp.samples if self.hp.multiple_sample else 1)]

    def u(self, seed: int, i: int) -> torch.Tensor:
        """u (r x n, float32) of matrix i for the sample with this seed."""
        cols = self.engine.params[i].shape[1]
        return lowrank.gaussian(self.engine.directions, seed, lowrank.U, i, self.rank(i), cols)

    def variants(self, step: int, seeds: list[int]):
        """multiple_sample: [theta, theta + eps D_1, ..., theta + eps D_N]; else [theta + eps D, theta - eps D]
        (D: P u for a matrix, z for the others)."""
        engine, eps, bases = self.engine, self.hp.eps, self.kept(step)
        plan = ([(None, 0)] + [(s, 1) for s in seeds]) if self.hp.multiple_sample else [(seeds[0], 1), (seeds[0], -1)]

        def make(i: int, rows: slice, dtype: torch.dtype | None, which: Sequence[int]) -> list[torch.Tensor]:
            out = []
            for seed, sign in (plan[k] for k in which):
                if seed is None:
                    out.append(engine.params[i][rows])
                elif i in bases:
                    t = engine.borrow(i, rows)
                    lowrank.probe(engine.params[i][rows], bases[i][rows], self.u(seed, i), sign * eps, t)
                    out.append(t)
                else:
                    plus, minus = engine.pair(seed, eps, None, i, rows, dtype)
                    used, spare = (plus, minus) if sign > 0 else (minus, plus)
                    engine.give_back(spare)
                    out.append(used)
            return out

        return make, len(plan)

    def estimate(self, step: int, seed: int, loss_fn: LossFn, fresh: Fresh | None) -> tuple[dict, float, dict]:
        seeds = self.seeds(seed)
        make, copies = self.variants(step, seeds)
        losses = self.score(loss_fn, copies, make, self.hp.stacked)
        if self.hp.multiple_sample:
            loss = losses[0]
            grads = [(f - loss) / self.hp.eps for f in losses[1:]]
        else:
            loss, grads = (losses[0] + losses[1]) / 2, [(losses[0] - losses[1]) / (2 * self.hp.eps)]
        record = {"seed": seed, "grads": grads, "lr": self.hp.lr * self.schedule(step)}
        return record, loss, {names.PROJECTED_GRAD: sum(grads) / len(grads)}

    def forwards(self) -> int:
        return self.hp.samples + 1 if self.hp.multiple_sample else 2

    def state_copies(self) -> float:
        params = self.engine.params
        return super().state_copies() + self.share(sum(params[i].shape[0] * self.rank(i) for i in self.matrix))  # P

    def descend(self, step: int, record: dict[str, Any]) -> None:
        """W <- keep W - lr P orth(R) for a matrix, v <- keep' v - vector_lr mean_k g_k z_k otherwise."""
        self.move(step, record)
        self.log(lambda: self.move(step, record, undo=True))

    @torch.no_grad()
    def move(self, step: int, record: dict[str, Any], undo: bool = False) -> None:
        seeds, grads, lr = self.seeds(record["seed"]), record["grads"], record["lr"]
        vector_lr = lr if self.hp.vector_lr is None else self.hp.vector_lr  # released: -1e-7, not scheduled
        keep, vector_keep, orthogonal = self.keep(lr), self.keep(vector_lr), ORTHOGONALISE[self.hp.optimizer]
        bases, engine = self.kept(step), self.engine
        for i, theta in enumerate(engine.params):
            if i in bases:
                work = torch.promote_types(theta.dtype, torch.float32)
                with lowrank.exact(theta):
                    r = torch.zeros(self.rank(i), theta.shape[1], dtype=work, device=theta.device)
                    for s, g in zip(seeds, grads):
                        r.add_(self.u(s, i).to(work) * g)
                    lowrank.axpy(theta, bases[i], orthogonal(r.div_(len(seeds))), keep[i], lr, undo)
                continue
            mean = torch.zeros_like(theta)
            for s, g in zip(seeds, grads):
                mean.add_(engine.direction(s, i) * g)
            mean.div_(len(seeds))
            if undo:
                theta.add_(mean, alpha=vector_lr).div_(vector_keep[i])
            else:
                theta.mul_(vector_keep[i]).sub_(mean, alpha=vector_lr)


register_method("zo-muon-lora")(with_lora(ZOMuon, {"lr": "3e-2"}))
