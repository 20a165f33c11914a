"""Factored directions: z of a matrix parameter as a product of small Gaussian factors, LOZO's U V^T and
SubZero's U Z V^T (U, V orthonormal).

Each factor is drawn from the run's generator like a full z, from its own stream: the values of factor `tag`
of parameter i at seed s are those z of parameter i would have at seed mix(s, tag) (philox: the key
mix(mix(s, tag), i); torch-normal: `normal_` seeded with it). So a factor is a pure function of (seed,
factor, parameter) and a seed log replays it. A probe is one `addmm` over theta, theta + eps L R (L: rows x
rank, R: rank x cols), and an update one `addmm_` in place, theta <- keep theta - coeff L R: BLAS reads theta
once and writes once, and nothing larger than the factors, (rows + cols) x rank values, is ever stored.
Every product here runs in float32 with autocast off (`exact`): a run steps inside the bf16-mixed autocast
context and `benchmark replay` outside it, and both must compute the same update.
"""
from __future__ import annotations

import contextlib

import torch

from methods.zo.directions import Directions
from methods.zo.generators import mix

U, V, CORE = 1, 2, 3  # the factors' tags


def exact(t: torch.Tensor) -> contextlib.AbstractContextManager:
    """Autocast off on t's device: the factors' products in their own dtype, inside a run's forward context
    or outside it alike."""
    return torch.autocast(t.device.type, enabled=False)


def gaussian(directions: Directions, seed: int, tag: int, i: int, rows: int, cols: int) -> torch.Tensor:
    """A rows x cols standard normal matrix (float32), factor `tag` of parameter i at this seed."""
    out = torch.empty(rows, cols, dtype=torch.float32, device=directions.params[i].device)
    directions.generator.fill(out, mix(seed, tag), i, None, 0, 0)
    return out


def orthonormal(directions: Directions, seed: int, tag: int, i: int, rows: int, rank: int) -> torch.Tensor:
    """Q of the QR factorisation of a rows x rank Gaussian factor (SubZero's `fast_svd_method_v2`)."""
    g = gaussian(directions, seed, tag, i, rows, rank)
    with exact(g):
        return torch.linalg.qr(g)[0]


def probe(theta: torch.Tensor, left: torch.Tensor, right: torch.Tensor, scale: float, out: torch.Tensor) -> None:
    """out = theta + scale (left @ right), theta a 2-d weight (or its rows, with left's same rows)."""
    with exact(theta):
        torch.addmm(theta, left.to(theta.dtype), right.to(theta.dtype), alpha=scale, out=out)


@torch.no_grad()
def axpy(theta: torch.Tensor, left: torch.Tensor, right: torch.Tensor, keep: float, coeff: float,
         undo: bool = False) -> None:
    """theta <- keep theta - coeff (left @ right) in place (`undo`: the inverse, up to rounding)."""
    left, right = left.to(theta.dtype), right.to(theta.dtype)
    with exact(theta):
        if undo:
            theta.addmm_(left, right, alpha=coeff)
            if keep != 1.0:
                theta.div_(keep)
        else:
            theta.addmm_(left, right, beta=keep, alpha=-coeff)
