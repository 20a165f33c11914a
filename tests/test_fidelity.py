"""Each method's default against an independent transcription of the authors' released code.

The transcriptions below are written from the released files (named in each docstring) with plain
tensors and their own loops; they never call into `methods/`. They share with our code only what
makes the two comparable: the model, the batches and the random stream (run seed -> splitmix64 ->
torch.Generator, transcribed here too: our `generator=torch-normal`; a rule is the same whatever draws z, and
the default generator, philox, is held to Triton's and its fused kernels to plain torch in test_directions.py). Each test also runs a non-default rule through the same
comparison and asserts that it does NOT match: a test that cannot tell the rules apart proves nothing.
"""
import copy
import math

import pytest
import torch
from torch import nn

from benchmark.scoring import BatchLoss, classification_loss
from tests.helpers import Loop, make, tiny, toy_examples

M64 = (1 << 64) - 1


def splitmix(*values: int) -> int:
    """The seed mixer our engine uses (splitmix64 over the values), transcribed."""
    x = 0x9E3779B97F4A7C15
    for v in values:
        x = (x ^ (v & M64)) * 0xBF58476D1CE4E5B9 & M64
        x = (x ^ (x >> 27)) * 0x94D049BB133111EB & M64
        x ^= x >> 31
    return x >> 1


# ----------------------------------------------------------------------------------------- DiZO

def released_dizo_round(model, names, theta0, batches, seed, step, tau, eps_p, eta_p, gamma=None):
    """Skilteee/DiZO large_models/trainer.py, `dizo_zo_iters` -> `zo_forward` (+ `perturb_gamma`), one
    round of len(batches) iterations. Returns (gamma, whether some z was clipped)."""
    weights = dict(model.named_parameters())
    current = [weights[n].detach().clone() for n in names]
    ts = torch.stack([torch.linalg.vector_norm(w - w0) for w, w0 in zip(current, theta0)])
    gamma = ts.clone() if gamma is None else torch.minimum(torch.maximum(gamma, (1 - tau) * ts), (1 + tau) * ts)
    gen = torch.Generator().manual_seed(splitmix(seed, step, 0xD120))
    clipped = False

    def loss_at(g, batch):
        with torch.no_grad():
            for n, w, w0, gi, t in zip(names, current, theta0, g, ts):
                weights[n].copy_(w0 + (gi / (t + 1e-8)) * (w - w0))  # apply_constraints
            loss = classification_loss(model, batch).item()
            for n, w in zip(names, current):
                weights[n].copy_(w)  # reverse_constraints
        return loss

    for batch in batches:
        u = torch.randn(len(names), generator=gen, dtype=torch.float64)
        z = torch.stack([torch.clip(u[i], -(tau / eps_p) * ts[i], (tau / eps_p) * ts[i]) for i in range(len(names))])
        clipped |= bool((z != u).any())
        loss1 = loss_at(gamma + eps_p * z, batch)
        loss2 = loss_at(gamma - eps_p * z, batch)
        grad = (loss1 - loss2) / (2 * eps_p)
        gamma = torch.stack([torch.clip(gamma[i] - eta_p * ts[i] * grad * z[i], (1 - tau) * ts[i], (1 + tau) * ts[i])
                             for i in range(len(names))])
    return gamma, clipped


def apply_round(model, names, theta0, gamma):
    """`zo_forward(apply=True)`: theta = theta0 + gamma / (||delta|| + 1e-8) * delta."""
    weights = dict(model.named_parameters())
    with torch.no_grad():
        for n, w0, g in zip(names, theta0, gamma):
            w = weights[n]
            w.copy_(w0 + (g / (torch.linalg.vector_norm(w - w0) + 1e-8)) * (w - w0))


def displaced_pair(displacement: float, seed: int = 0):
    """Two identical float64 tiny OPT models, q and v weights moved by `displacement` x their norm."""
    loaded = tiny("opt")
    loaded.model.double().eval()  # ZO forwards run without dropout
    gen = torch.Generator().manual_seed(seed)
    names = [n for n, _ in loaded.model.named_parameters() if n.endswith(("q_proj.weight", "v_proj.weight"))]
    theta0 = [dict(loaded.model.named_parameters())[n].detach().clone() for n in names]
    twin = copy.deepcopy(loaded.model)
    moves = []
    for w0 in theta0:
        d = torch.randn(w0.shape, generator=gen, dtype=torch.float64)
        moves.append(d * (displacement * w0.norm() / d.norm()))
    return loaded, twin, names, theta0, moves


def displace(model, names, moves):
    weights = dict(model.named_parameters())
    with torch.no_grad():
        for n, m in zip(names, moves):
            weights[n].add_(m)


def run_dizo_rounds(rule: str | None, tau: float, reinit: bool, displacement: float):
    """Our dizo (its default rule when `rule` is None) and the transcription, same model, batches and
    seed: (ours, theirs, clipped) after the rounds."""
    loaded, twin, names, theta0, moves = displaced_pair(displacement)
    trainer = make("dizo", loaded.model, seed=3, projection_interval="1000", clip_range=str(tau),
                   reinit=str(reinit).lower(), **({} if rule is None else {"projection_rule": rule}))
    assert [n for n, _ in trainer.layers] == names
    displace(loaded.model, names, moves)
    displace(twin, names, moves)
    loop = Loop(loaded, n=32, batch_size=8, seed=5)
    rounds = (7, 15) if not reinit else (7,)
    gamma, clipped = None, False
    for step in rounds:
        batches = [loop.encoder.collate([loop.examples[i] for i in next(loop.batches)]) for _ in range(10)]
        queue = iter(batches)
        trainer.project(step, lambda: BatchLoss(loaded.model, next(queue)))
        gamma, c = released_dizo_round(twin, names, theta0, batches, 3, step, tau, 0.1, 2.0, None if reinit else gamma)
        clipped |= c
        apply_round(twin, names, theta0, gamma)
    return trainer.gamma, gamma, clipped


@pytest.mark.parametrize("tau", [0.1, 0.2])
@pytest.mark.parametrize("reinit", [True, False])
@pytest.mark.parametrize("displacement", [0.002, 3.0])  # ts ~1e-3 (every z clipped), ts ~2
def test_dizo_default_search_is_the_released_rule(tau, reinit, displacement):
    ours, theirs, clipped = run_dizo_rounds(None, tau, reinit, displacement)
    assert clipped or displacement > 1  # at ts ~1e-3 the clip of z is exercised
    assert not torch.allclose(theirs, torch.ones_like(theirs) * theirs[0])  # the search moved gamma per layer
    torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=0)


@pytest.mark.parametrize("rule", ["relative", "appendix"])
def test_the_other_dizo_rules_are_not_the_released_one(rule):
    ours, theirs, _ = run_dizo_rounds(rule, 0.2, True, 3.0)
    assert not torch.allclose(ours, theirs, rtol=1e-3, atol=0)


def test_a_released_round_undoes_a_harmful_displacement():
    """After moving every projection 10x its norm away from a trained point (ts ~12), a round lowers the
    held-out loss, for each of 4 z streams, with few ratios on a clip bound. Measured on 8 streams:
    released -0.003 to -0.011 with 0-7% on a bound; the relative rule 57-100% on a bound, one stream worse."""
    loaded = tiny()
    loaded.model.double().eval()
    loop = Loop(loaded, n=64)
    trainer = make("dizo", loaded.model, lr="2e-3", projection_interval="1000", projected_layers="q,k,v,o,dense")
    loop.run(trainer, 100)
    heldout = loop.encoder.collate(toy_examples(128, offset=64))

    def held() -> float:
        with torch.no_grad():
            return classification_loss(loaded.model, heldout).item()

    before = held()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for _, i in trainer.layers:
            p = trainer.engine.params[i]
            d = torch.randn(p.shape, generator=gen, dtype=p.dtype)
            p.add_(d * (10.0 * p.norm() / d.norm()))
    displaced, state = held(), copy.deepcopy(loaded.model.state_dict())
    assert displaced > before + 0.03, (before, displaced)
    for step in range(100, 104):
        loaded.model.load_state_dict(state)
        _, diagnostics = trainer.project(step, loop.loss_fn)
        assert held() < displaced - 0.001, (step, displaced, held())
        assert diagnostics["dizo/ratio_at_bound"] < 0.5, diagnostics


def released_dizo_fo_rounds(model, names, theta0, rounds, lr=0.1, l1=1e-3):
    """Skilteee/DiZO large_models/trainer.py, `dizo_trainer.dizo_iters` + `DiZO.forward`: gamma starts at 0,
    one Adam over every round, loss + 1e-3 * sum |gamma|, no re-init, no clip; after each round
    `apply_constraints(apply=True)`. Forwards see theta0 + gamma / (||delta|| + 1e-8) * delta."""
    modules = {n: model.get_submodule(n.rsplit(".", 1)[0]) for n in names}
    gamma = torch.zeros(len(names), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.Adam([gamma], lr=lr)
    for batches in rounds:
        current = [modules[n].weight.detach().clone() for n in names]
        for batch in batches:
            for k, n in enumerate(names):
                w, w0 = current[k], theta0[k]
                modules[n]._parameters["weight"] = w0 + (gamma[k] / (torch.linalg.vector_norm(w - w0) + 1e-8)) * (w - w0)
            loss = classification_loss(model, batch) + l1 * sum(g.abs() for g in gamma)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            for k, n in enumerate(names):
                modules[n]._parameters["weight"] = nn.Parameter(current[k], requires_grad=False)
        apply_round(model, names, theta0, gamma.detach())
    return gamma.detach()


@pytest.mark.parametrize("rule", ["released", "ratio"])
def test_dizo_fo_released_switch_is_the_released_search(rule):
    """`projection_rule=released` is the released search; our default (`ratio`) is a stated departure."""
    loaded, twin, names, theta0, moves = displaced_pair(3.0)
    trainer = make("dizo-fo", loaded.model, seed=3, projection_interval="1000", projection_rule=rule)
    displace(loaded.model, names, moves)
    displace(twin, names, moves)
    loop = Loop(loaded, n=32, batch_size=8, seed=5)
    rounds = []
    for step in (7, 15):
        batches = [loop.encoder.collate([loop.examples[i] for i in next(loop.batches)]) for _ in range(10)]
        queue = iter(batches)
        trainer.project(step, lambda: BatchLoss(loaded.model, next(queue)))
        rounds.append(batches)
    theirs = released_dizo_fo_rounds(twin, names, theta0, rounds)
    assert theirs.abs().max() > 0.5  # Adam moved gamma well away from its start at 0
    if rule != "released":
        assert not torch.allclose(trainer.gamma, theirs, rtol=1e-2)
        return
    torch.testing.assert_close(trainer.gamma, theirs, rtol=1e-9, atol=1e-12)
    ours = dict(loaded.model.named_parameters())
    for n, w in twin.named_parameters():
        torch.testing.assert_close(ours[n].detach(), w.detach(), rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------------------------------- HiZOO

class Small(nn.Module):
    """A weight, a bias and a norm: every kind of parameter weight decay may or may not touch."""

    def __init__(self, norm: str = "norm"):
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.linear = nn.Linear(4, 3).double()
        self.norm_name = norm  # OPT names its norms `..._layer_norm`, which MeZO's released decay rule reads
        setattr(self, norm, nn.LayerNorm(3).double())
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64) * 0.5 + (1.0 if p.dim() == 1 else 0.0))
        self.register_buffer("x", torch.randn(5, 4, generator=gen, dtype=torch.float64))
        self.register_buffer("y", torch.randn(5, 3, generator=gen, dtype=torch.float64))

    def forward(self):
        return ((getattr(self, self.norm_name)(self.linear(self.x)) - self.y) ** 2).mean()

    def copies(self, n: int) -> torch.Tensor:
        """The loss of n stacked copies of the data in one pass (what the dual forward asks for)."""
        out = getattr(self, self.norm_name)(self.linear(self.x.repeat(n, 1)))
        return ((out - self.y.repeat(n, 1)) ** 2).view(n, -1).mean(1)


class Row(nn.Module):
    """x times a 1 x h row of weights (a module of its own: the engine substitutes a parameter where the module
    that owns it runs)."""

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight


class Wide(Small):
    """Small with what the low-rank methods' matrix rules tell apart: a second matrix (3 x 3), a 1 x 3 row (a
    matrix by `ndim`, a vector by SubZero's `squeeze`) and, at rank 4, a rank above every matrix's side."""

    def __init__(self):
        super().__init__("layer_norm")
        gen = torch.Generator().manual_seed(1)
        self.mix = nn.Linear(3, 3, bias=False).double()
        self.row = Row(torch.randn(1, 3, generator=gen, dtype=torch.float64) * 0.5 + 1.0)
        with torch.no_grad():
            self.mix.weight.copy_(torch.randn(3, 3, generator=gen, dtype=torch.float64) * 0.5)

    def forward(self):
        return self.copies(1)[0]

    def copies(self, n: int) -> torch.Tensor:
        out = self.layer_norm(self.row(self.mix(self.linear(self.x.repeat(n, 1)))))
        return ((out - self.y.repeat(n, 1)) ** 2).view(n, -1).mean(1)


def functional(model: Small):
    """(parameter names, a copy of the parameters, loss at given parameters): the transcriptions' model."""
    def loss_at(params):
        with torch.no_grad():
            return torch.func.functional_call(model, params, ()).item()

    return [n for n, _ in model.named_parameters()], {n: p.detach().clone() for n, p in model.named_parameters()}, loss_at


def seeded_z(theta: dict[str, torch.Tensor], seed: int, step: int) -> dict[str, torch.Tensor]:
    """Our engine's z for a model of small parameters: one generator per parameter, seeded (seed, step, index)."""
    s = splitmix(seed, step)
    return {n: torch.empty_like(t).normal_(generator=torch.Generator().manual_seed(splitmix(s, i)))
            for i, (n, t) in enumerate(theta.items())}


def released_hizoo(model: Small, steps: int, seed: int, lr: float, eps: float, alpha: float, wd: float):
    """Yanjun-Zhao/HiZOO large_models/trainer.py, `zo_Hessian_step_update` (+ the perturbation), with
    our seeded z; returns the parameters and the Hessian_matrix after `steps`."""
    names, theta, loss_at = functional(model)
    hessian = {n: torch.ones_like(t) for n, t in theta.items()}
    for step in range(steps):
        z = seeded_z(theta, seed, step)
        loss_original = loss_at(theta)
        loss1 = loss_at({n: theta[n] + torch.sqrt(hessian[n]) * z[n] * eps for n in names})
        loss2 = loss_at({n: theta[n] - torch.sqrt(hessian[n]) * z[n] * eps for n in names})
        for n in names:
            hessian_temp = 1 / hessian[n] * z[n] * z[n]
            estimator = abs(loss1 + loss2 - 2 * loss_original) * hessian_temp / (2 * eps * eps)
            hessian[n] = (1 - alpha) * hessian[n] + alpha * estimator
            grad = (loss1 - loss2) / (2 * eps) * z[n] * torch.sqrt(hessian[n])
            theta[n] = theta[n] - lr * (grad + wd * theta[n])
    return theta, hessian


def run_hizoo(rule: str | None, steps: int = 12):
    """Our hizoo (its default rule when `rule` is None) and the transcription from the same start."""
    model, twin = Small(), Small()
    twin.load_state_dict(model.state_dict())
    trainer = make("hizoo", model, seed=11, lr="0.05", eps="1e-3", hessian_smooth="0.3", weight_decay="0.1",
                   generator="torch-normal",
                   **({} if rule is None else {"hessian_rule": rule}))
    for step in range(steps):
        trainer.step(step, model)
    theta, hessian = released_hizoo(twin, steps, 11, 0.05, 1e-3, 0.3, 0.1)
    return trainer, dict(model.named_parameters()), theta, hessian


def released_mezo(model: Small, steps: int, seed: int, lr: float, eps: float, wd: float) -> dict[str, torch.Tensor]:
    """princeton-nlp/MeZO large_models/trainer.py, `zo_step` + `zo_update` (constant lr), with our seeded z."""
    names, theta, loss_at = functional(model)
    for step in range(steps):
        z = seeded_z(theta, seed, step)
        loss1 = loss_at({n: theta[n] + z[n] * eps for n in names})
        loss2 = loss_at({n: theta[n] - z[n] * eps for n in names})
        projected_grad = (loss1 - loss2) / (2 * eps)
        for n in names:
            if "bias" not in n and "layer_norm" not in n and "layernorm" not in n:
                theta[n] = theta[n] - lr * (projected_grad * z[n] + wd * theta[n])
            else:
                theta[n] = theta[n] - lr * projected_grad * z[n]
    return theta


@pytest.mark.parametrize("dual", ["true", "false"])
def test_mezo_default_is_the_released_step(dual):
    """MeZO's step and update, decay skipping biases and layer norms, in either forward form."""
    model, twin = Small("layer_norm"), Small("layer_norm")
    twin.load_state_dict(model.state_dict())
    trainer = make("mezo", model, seed=11, lr="0.05", eps="1e-3", weight_decay="0.1", dual_forward=dual,
                   generator="torch-normal")
    for step in range(12):
        trainer.step(step, model)
    theta = released_mezo(twin, 12, 11, 0.05, 1e-3, 0.1)
    start = dict(Small("layer_norm").named_parameters())
    assert all(not torch.allclose(theta[n], start[n]) for n in theta)  # every parameter moved
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.detach(), theta[name], rtol=1e-8, atol=1e-9)


def test_hizoo_default_is_the_released_step():
    trainer, ours, theta, hessian = run_hizoo(None)
    assert any(not torch.allclose(h, torch.ones_like(h), atol=1e-3) for h in hessian.values())  # H moved
    for name, s in zip(ours, trainer.scales):
        torch.testing.assert_close(ours[name].detach(), theta[name], rtol=1e-8, atol=1e-9)
        torch.testing.assert_close(s ** 2, hessian[name], rtol=1e-8, atol=1e-9)
    diag = trainer.diagnostics()
    assert diag["hizoo/scale_min"] < diag["hizoo/scale_median"] < diag["hizoo/scale_max"]


def test_hizoo_inverse_rule_is_not_the_released_step():
    _, ours, theta, _ = run_hizoo("inverse")
    assert not all(torch.allclose(ours[n].detach(), theta[n], rtol=1e-6) for n in theta)


def test_hizoo_at_table7_smoothing_reports_a_still_hessian():
    model = Small()
    trainer = make("hizoo", model, lr="0.05", eps="1e-3")  # alpha = 1e-8, Table 7's
    for step in range(30):
        trainer.step(step, model)
    diag = trainer.diagnostics()
    assert abs(diag["hizoo/scale_min"] - 1) < 1e-4 and abs(diag["hizoo/scale_max"] - 1) < 1e-4, diag


def test_displacement_probe_prints_one_line_per_scenario_and_rule():
    from benchmark.measurements.displacement import main

    lines = main(["--model", "tiny-random-llama", "--mezo-steps", "3", "--lr", "1e-3", "--num-dev", "32",
                  "--batch-size", "4", "--displacement", "5"])
    assert [line.split()[:2] for line in lines] == [["mezo-3", "released"], ["mezo-3", "relative"],
                                                    ["displaced-5", "released"], ["displaced-5", "relative"]]
    before = [float(line.split("held-out loss ")[1].split(" -> ")[0]) for line in lines]
    assert before[0] == before[1] and before[2] == before[3]  # each rule starts from the same weights
    assert before[2] != before[0]  # the displacement moved the model


# ------------------------------------------------------------------------------------- ZO-Bench
# ZO-Bench/ZO-LLM `zo-bench/trainer.py`: `zo_step` (two_side, q = 1) and `zo_conserv_step`, then the optimizer
# the trainer steps: torch SGD and Adam as it builds them, and transformers 4.28's `AdamW` (`adamw_hf`), the
# optimizer the released zo_sign_opt and zo_conserv sweeps ran (methods/zo_bench.py says why).

ZB_STEPS, ZB_SEED, ZB_LR, ZB_EPS = 10, 11, 0.05, 1e-3
BETAS, ADAM_EPS = (0.9, 0.999), 1e-3  # a large eps: where it sits (torch Adam vs adamw_hf) shows in the weights


def no_decay(name: str) -> bool:
    """The HF Trainer's no-decay group, as the Small model names it: biases and LayerNorm weights."""
    return "bias" in name or "norm" in name


class Optimizer:
    """One `optimizer.step()` over every parameter, its gradient `scale * z`, with the optimizer's state."""

    def __init__(self, kind: str, momentum: float = 0.0, weight_decay: float = 0.0, lr: float = ZB_LR) -> None:
        self.kind, self.momentum, self.weight_decay, self.lr = kind, momentum, weight_decay, lr
        self.state: dict[str, dict[str, torch.Tensor]] = {}
        self.t = 0

    def step(self, theta: dict, z: dict, scale: float) -> None:
        self.t += 1
        b1, b2 = BETAS
        for n in theta:
            grad, s = scale * z[n], self.state.setdefault(n, {})
            if self.kind == "sgd":  # torch.optim.SGD(lr, momentum)
                if self.momentum:
                    s["buf"] = grad if "buf" not in s else self.momentum * s["buf"] + grad
                    grad = s["buf"]
                theta[n] = theta[n] - self.lr * grad
                continue
            if self.kind == "adam" and self.weight_decay:  # torch.optim.Adam: coupled decay
                grad = grad + self.weight_decay * theta[n]
            s["m"] = b1 * s.get("m", 0.0) + (1 - b1) * grad
            s["v"] = b2 * s.get("v", 0.0) + (1 - b2) * grad * grad
            bc1, bc2 = 1 - b1 ** self.t, 1 - b2 ** self.t
            if self.kind == "adam":  # m / bc1 over sqrt(v / bc2) + eps
                theta[n] = theta[n] - self.lr * (s["m"] / bc1) / (torch.sqrt(s["v"] / bc2) + ADAM_EPS)
            else:  # adamw_hf: eps on sqrt(v), the corrections in the step size, decay after
                theta[n] = theta[n] - self.lr * math.sqrt(bc2) / bc1 * s["m"] / (torch.sqrt(s["v"]) + ADAM_EPS)
                if self.weight_decay and not no_decay(n):
                    theta[n] = theta[n] - self.lr * self.weight_decay * theta[n]


def released(model: Small, optimizer: Optimizer, sign: bool = False, conserve: bool = False,
             endings: list | None = None) -> dict:
    """`zo_step` (or `zo_conserv_step`) then the optimizer, ZB_STEPS times, from the model's weights; `endings`
    collects which of the conservative step's three points each step ended at."""
    names, theta, loss_at = functional(model)
    for step in range(ZB_STEPS):
        z = seeded_z(theta, ZB_SEED, step)
        loss0 = loss_at(theta)
        loss1 = loss_at({n: theta[n] + z[n] * ZB_EPS for n in names})
        loss2 = loss_at({n: theta[n] - z[n] * ZB_EPS for n in names})
        projected_grad = (loss1 - loss2) / (2 * ZB_EPS)
        if not conserve:
            optimizer.step(theta, z, float(torch.sign(torch.tensor(projected_grad))) if sign else projected_grad)
            continue
        optimizer.step(theta, z, projected_grad)  # update_params()
        loss1 = loss_at(theta)
        optimizer.step(theta, z, -2.0 * projected_grad)  # update_params(sign=-2.0)
        loss2 = loss_at(theta)
        if loss1 > loss0:
            if loss0 < loss2:
                optimizer.step(theta, z, projected_grad)
            ending = "theta" if loss0 < loss2 else "mirror"
        elif loss1 < loss2:
            optimizer.step(theta, z, 2.0 * projected_grad)
            ending = "step"
        else:
            ending = "mirror"
        if endings is not None:
            endings.append(ending)
    return theta


def ours(method: str, **sets: str) -> dict:
    model = Small()
    trainer = make(method, model, seed=ZB_SEED, eps=str(ZB_EPS), generator="torch-normal", **{"lr": str(ZB_LR), **sets})
    for step in range(ZB_STEPS):
        trainer.step(step, model)
    return dict(model.named_parameters())


def matches(mine: dict, theirs: dict) -> bool:
    start = dict(Small().named_parameters())
    assert all(not torch.allclose(theirs[n], start[n]) for n in theirs)  # every parameter moved
    return all(torch.allclose(p.detach(), theirs[n], rtol=1e-8, atol=1e-9) for n, p in mine.items())


ADAM_SETS = {"adam_eps": str(ADAM_EPS)}
CASES = {  # method: (its default, and a rule that is not it), each as (our settings, the transcription's optimizer)
    "zo-sgd-sign": (({**ADAM_SETS, "weight_decay": "0.1"}, Optimizer("adamw-hf", weight_decay=0.1)),
                    ({**ADAM_SETS, "optimizer": "adam", "weight_decay": "0.1"}, Optimizer("adamw-hf", weight_decay=0.1))),
    "zo-sgd-mmt": (({}, Optimizer("sgd", momentum=0.9)), ({"momentum": "0.5"}, Optimizer("sgd", momentum=0.9))),
    "zo-adam": ((ADAM_SETS, Optimizer("adam")), ({**ADAM_SETS, "beta1": "0.5"}, Optimizer("adam"))),
    "zo-sgd-cons": (({**ADAM_SETS, "weight_decay": "0.1"}, Optimizer("adamw-hf", weight_decay=0.1)),
                    ({**ADAM_SETS, "optimizer": "sgd"}, Optimizer("adamw-hf"))),
}


@pytest.mark.parametrize("method", CASES)
def test_each_default_is_the_released_step_and_another_rule_is_not(method):
    (sets, optimizer), (other_sets, other_optimizer) = CASES[method]
    kind = {"sign": "zo-sgd-sign" == method, "conserve": "zo-sgd-cons" == method}
    assert matches(ours(method, **sets), released(Small(), optimizer, **kind))
    assert not matches(ours(method, **other_sets), released(Small(), other_optimizer, **kind))


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_the_switches_are_the_optimizers_they_name(optimizer):
    """`optimizer=sgd` is the paper's sign-SGD (and conservative SGD), `adam` torch's Adam."""
    sets = {"optimizer": optimizer, **ADAM_SETS, **({"momentum": "0.9"} if optimizer == "sgd" else {})}
    transcribed = Optimizer(optimizer, momentum=0.9)
    assert matches(ours("zo-sgd-sign", **sets), released(Small(), transcribed, sign=True))
    transcribed = Optimizer(optimizer, momentum=0.9)
    assert matches(ours("zo-sgd-cons", **sets), released(Small(), transcribed, conserve=True))


def test_the_conservative_step_takes_each_of_its_three_endings():
    """At lr 0.2 the ten steps end at theta (back by g z), at the step along g z (forward by 2 g z) and at its
    mirror (no last call): each branch of `zo_conserv_step` is exercised, and ours follows it."""
    endings: list[str] = []
    theirs = released(Small(), Optimizer("adamw-hf", weight_decay=0.1, lr=0.2), conserve=True, endings=endings)
    assert set(endings) == {"theta", "step", "mirror"}, endings
    assert matches(ours("zo-sgd-cons", **ADAM_SETS, weight_decay="0.1", lr="0.2"), theirs)


def test_zo_bench_plain_zo_sgd_is_our_mezo():
    """`trainer=zo_sgd`, momentum 0: torch SGD on g z is MeZO's step without weight decay."""
    assert matches(ours("mezo"), released(Small(), Optimizer("sgd")))
    assert not matches(ours("mezo", weight_decay="0.1"), released(Small(), Optimizer("sgd")))


def released_forward_grad(model: Small, steps: int, seed: int, lr: float, wd: float, decay_all: bool = False) -> dict:
    """`forward_grad_step` + `forward_grad_update` with our seeded v: the directional derivative grad f . v
    (here by reverse mode: the jvp's value, computed another way), then p -= lr (v d + wd p), the decay off
    biases and layer norms (`decay_all`: a rule that is not the released one)."""
    names, theta, _ = functional(model)
    for step in range(steps):
        v = seeded_z(theta, seed, step)
        params = {n: t.clone().requires_grad_(True) for n, t in theta.items()}
        grads = torch.autograd.grad(torch.func.functional_call(model, params, ()), list(params.values()))
        derivative = sum((g * v[n]).sum() for g, n in zip(grads, params)).item()
        for n in names:
            decays = decay_all or ("bias" not in n and "layer_norm" not in n and "layernorm" not in n)
            theta[n] = theta[n] - lr * (v[n] * derivative + (wd * theta[n] if decays else 0.0))
    return theta


def test_forward_grad_default_is_the_released_step():
    """One forward-mode pass, MeZO's update with the exact derivative; decay off biases and layer norms."""
    model, start = Small("layer_norm"), dict(Small("layer_norm").named_parameters())
    trainer = make("forward-grad", model, seed=ZB_SEED, lr=str(ZB_LR), weight_decay="0.1", generator="torch-normal")
    for step in range(ZB_STEPS):
        assert trainer.step(step, model).forward_passes == 1
    theta = released_forward_grad(Small("layer_norm"), ZB_STEPS, ZB_SEED, ZB_LR, 0.1)
    assert all(not torch.allclose(theta[n], start[n]) for n in theta)  # every parameter moved
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.detach(), theta[name], rtol=1e-8, atol=1e-9)
    other = released_forward_grad(Small("layer_norm"), ZB_STEPS, ZB_SEED, ZB_LR, 0.1, decay_all=True)
    assert not all(torch.allclose(p.detach(), other[n], rtol=1e-8, atol=1e-9) for n, p in model.named_parameters())


# ------------------------------------------------------------------------------- LOZO, LOZO-M, SubZero, FZOO
# Our factors with generator=torch-normal: factor `tag` of parameter i at seed s is float32 `normal_` seeded
# splitmix(splitmix(s, tag), i) (U = 1, V = 2, the SubZero core = 3); a redraw step's update seed under LOZO's
# released_refresh is splitmix(step seed, 0x5A5A); FZOO's probe k has seed splitmix(step seed, k), its signs
# those of the float64 normals drawn with it (z >= 0 -> +1).

NU, RANK, STALE = 4, 2, 0x5A5A


def factor(seed: int, tag: int, i: int, rows: int, cols: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(splitmix(splitmix(seed, tag), i))
    return torch.empty(rows, cols, dtype=torch.float32).normal_(generator=gen)


def gauss(theta: torch.Tensor, seed: int, i: int) -> torch.Tensor:
    return torch.empty_like(theta).normal_(generator=torch.Generator().manual_seed(splitmix(seed, i)))


def decayed(name: str) -> bool:
    return "bias" not in name and "layer_norm" not in name and "layernorm" not in name


def released_lozo(model: Small, steps: int, seed: int, lr: float, eps: float, wd: float,
                  approximated_reseed: bool = True, momentum: float | None = None, carry: bool = True,
                  rank: int = RANK) -> dict:
    """optsuite/LOZO `lowrank_zo_step` + `lowrank_zo_update` (large_models/LOZOtrainer.py), or with `momentum`
    `lowrank_zo_update_momentum` (medium_models/src/LOZOtrainer.py), with our seeded factors.
    `approximated_reseed`: a redraw step's update draws from a stream of its own, which is this harness's
    approximation of the released reseed (the released update's U comes from the probe stream shifted by V's
    draw; that exact overlap is not transcribed, only its independence from the probed direction);
    `carry=False`: a rule that is not the released one (no V_old carry at a redraw)."""
    names, theta, loss_at = functional(model)
    v, v_old, m = {}, {}, {}
    for step in range(steps):
        s = splitmix(seed, step)

        def direction(at_seed: int) -> dict:
            out = {}
            for i, n in enumerate(names):
                if theta[n].dim() == 2:
                    if step % NU == 0 and at_seed == s:
                        v[n] = factor(splitmix(seed, step), 2, i, theta[n].shape[1], rank).double()
                    out[n] = (factor(at_seed, 1, i, theta[n].shape[0], rank).double(), v[n])
                else:
                    out[n] = gauss(theta[n], at_seed, i)
            return out

        probe = direction(s)
        full = {n: d[0] @ d[1].t() if isinstance(d, tuple) else d for n, d in probe.items()}
        loss1 = loss_at({n: theta[n] + full[n] * eps for n in names})
        loss2 = loss_at({n: theta[n] - full[n] * eps for n in names})
        g = (loss1 - loss2) / (2 * eps)
        upd = direction(splitmix(s, STALE)) if approximated_reseed and step % NU == 0 else probe
        for n in names:
            wd_n = wd * theta[n] if decayed(n) else 0.0
            if momentum is None:
                d = upd[n][0] @ upd[n][1].t() if isinstance(upd[n], tuple) else upd[n]
                theta[n] = theta[n] - lr * (g * d + wd_n)
            elif isinstance(upd[n], tuple):
                u, vn = upd[n]
                if step % NU == 0:
                    if n in v_old and carry:
                        m[n] = momentum * m[n] @ v_old[n].t() @ vn / v_old[n].shape[0] + (1 - momentum) * g * u
                    elif n in v_old:
                        m[n] = momentum * m[n] + (1 - momentum) * g * u
                    else:
                        m[n] = g * u
                elif step % NU == NU - 1:
                    v_old[n] = vn
                    m[n] = momentum * m[n] + (1 - momentum) * g * u
                else:
                    m[n] = momentum * m[n] + (1 - momentum) * g * u
                theta[n] = theta[n] - lr * (m[n] @ vn.t() + wd_n)
            else:
                m[n] = g * upd[n] if step == 0 else momentum * m[n] + (1 - momentum) * g * upd[n]
                theta[n] = theta[n] - lr * (m[n] + wd_n)
    return theta


def released_subzero(model: Small, steps: int, seed: int, lr: float, eps: float, scaled: bool = True,
                     rank: int = RANK, squeezed: bool = True) -> dict:
    """zimingyy/SubZero `zo_subspace_step` + `zo_subspace_update` (large_models/trainer.py), `fast_svd_method_v2`
    for U and V, torch SGD without momentum or decay, with our seeded factors; a matrix is what the released
    `len(torch.squeeze(p).shape) == 2` says, its rank capped at its smaller side (the released QR returns a
    narrower Q and the product fails). `scaled=False` (no sqrt(numel / r^2) factor), `squeezed=False` (every
    2-d parameter a matrix): rules that are not the released one."""
    names, theta, loss_at = functional(model)
    basis = {}
    for step in range(steps):
        s = splitmix(seed, step)
        z = {}
        for i, n in enumerate(names):
            if (len(torch.squeeze(theta[n]).shape) if squeezed else theta[n].dim()) != 2:
                z[n] = gauss(theta[n], s, i)
                continue
            rows, cols = theta[n].shape
            r = min(rank, rows, cols)
            if step % NU == 0:
                at = splitmix(seed, step)
                basis[n] = (torch.linalg.qr(factor(at, 1, i, rows, r))[0].double(),
                            torch.linalg.qr(factor(at, 2, i, cols, r))[0].double().T)
            u, v = basis[n]
            z0 = factor(s, 3, i, r, r).double()
            z[n] = u @ z0 @ v * (math.sqrt(theta[n].numel() / z0.numel()) if scaled else 1.0)
        loss1 = loss_at({n: theta[n] + z[n] * eps for n in names})
        loss2 = loss_at({n: theta[n] - z[n] * eps for n in names})
        g = (loss1 - loss2) / (2 * eps)
        for n in names:
            theta[n] = theta[n] - lr * (g * z[n])
    return theta


def released_fzoo(model: Small, steps: int, seed: int, lr: float, eps: float, probes: int,
                  unbiased: bool = False) -> dict:
    """DKmiyan/FZOO `zo_step` + `zo_update` (trainer.py) with our seeded signs (`unbiased=True`: a rule that
    is not the released one, the sample standard deviation)."""
    names, theta, loss_at = functional(model)
    for step in range(steps):
        s = splitmix(seed, step)
        r = [{n: torch.where(gauss(theta[n], splitmix(s, k), i) >= 0, 1.0, -1.0).double()
              for i, n in enumerate(names)} for k in range(probes)]
        loss1s = torch.tensor([loss_at({n: theta[n] + r[k][n] * eps for n in names}) for k in range(probes)],
                              dtype=torch.float64)
        std = torch.std(loss1s, unbiased=unbiased)
        projected_grad = (loss1s - loss_at(theta)) / (probes * std)
        for k in range(probes):
            for n in names:
                theta[n] = theta[n] - lr * (projected_grad[k].item() * r[k][n])
    return theta


def ours_on(method: str, model: Small, **sets: str) -> dict:
    trainer = make(method, model, seed=ZB_SEED, lr=str(ZB_LR), eps=str(ZB_EPS), generator="torch-normal", **sets)
    for step in range(ZB_STEPS):
        trainer.step(step, model)
    return dict(model.named_parameters())


def close(mine: dict, theirs: dict) -> bool:
    return close_on(lambda: Small("layer_norm"), mine, theirs)


def close_on(model, mine: dict, theirs: dict) -> bool:
    """Every parameter of the transcription moved from `model()`'s start, and ours agrees with it."""
    start = dict(model().named_parameters())
    assert all(not torch.allclose(theirs[n], start[n]) for n in theirs)  # every parameter moved
    return all(torch.allclose(p.detach(), theirs[n], rtol=1e-8, atol=1e-9) for n, p in mine.items())


LOZO_SETS = {"rank": str(RANK), "interval": str(NU), "weight_decay": "0.1"}


@pytest.mark.parametrize("refresh", ["true", "false"])
def test_lozo_default_is_the_released_step_with_its_reseed_approximated(refresh):
    """released_refresh=true (the default) is the released update with the redraw step's reseed approximated
    by a stream of its own (`released_lozo`); false is the probed direction; each matches its own
    transcription and not the other's."""
    mine = ours_on("lozo", Small("layer_norm"), **LOZO_SETS, released_refresh=refresh)
    reseed = refresh == "true"
    assert close(mine, released_lozo(Small("layer_norm"), ZB_STEPS, ZB_SEED, ZB_LR, ZB_EPS, 0.1,
                                     approximated_reseed=reseed))
    assert not close(mine, released_lozo(Small("layer_norm"), ZB_STEPS, ZB_SEED, ZB_LR, ZB_EPS, 0.1,
                                         approximated_reseed=not reseed))


@pytest.mark.parametrize("method", ["lozo", "subzero"])
def test_factored_probes_one_forward_each_are_the_stacked_ones(method):
    """dual_forward=false (the sequential probes a GPU falls back to) is the same step."""
    sets = LOZO_SETS if method == "lozo" else {"rank": str(RANK), "interval": str(NU)}
    stacked = ours_on(method, Small("layer_norm"), **sets)
    sequential = ours_on(method, Small("layer_norm"), **sets, dual_forward="false")
    assert all(torch.allclose(stacked[n], sequential[n], rtol=1e-12, atol=1e-14) for n in stacked)


def test_lozo_m_default_is_the_released_momentum_step():
    mine = ours_on("lozo-m", Small("layer_norm"), **LOZO_SETS)
    theirs = released_lozo(Small("layer_norm"), ZB_STEPS, ZB_SEED, ZB_LR, ZB_EPS, 0.1, momentum=0.9)
    assert close(mine, theirs)
    uncarried = released_lozo(Small("layer_norm"), ZB_STEPS, ZB_SEED, ZB_LR, ZB_EPS, 0.1, momentum=0.9, carry=False)
    assert not close(mine, uncarried)


def test_subzero_default_is_the_released_step():
    mine = ours_on("subzero", Small("layer_norm"), rank=str(RANK), interval=str(NU))
    assert close(mine, released_subzero(Small("layer_norm"), ZB_STEPS, ZB_SEED, ZB_LR, ZB_EPS))
    assert not close(mine, released_subzero(Small("layer_norm"), ZB_STEPS, ZB_SEED, ZB_LR, ZB_EPS, scaled=False))


def test_subzero_lora_shape_is_the_released_reshape_matrix():
    """`reshape_matrix` as released: the factor pair closest together, found by trial division."""
    from methods.subzero import most_square

    def reshape_matrix(integer):
        factor1, factor2 = 1, integer
        for i in range(1, int(math.sqrt(integer)) + 1):
            if int(integer / i) == integer / i:
                if integer / i - i < factor2 - factor1:
                    factor1, factor2 = i, integer / i
        return factor1, int(factor2)

    for n in (1, 7, 12, 36, 4608, 8 * 576, 49152 * 8):
        assert most_square(n) == reshape_matrix(n)


@pytest.mark.parametrize("stacked", ["true", "false"])
def test_fzoo_default_is_the_released_step(stacked):
    mine = ours_on("fzoo", Small("layer_norm"), probes="4", stacked=stacked)
    assert close(mine, released_fzoo(Small("layer_norm"), ZB_STEPS, ZB_SEED, ZB_LR, ZB_EPS, 4))
    assert not close(mine, released_fzoo(Small("layer_norm"), ZB_STEPS, ZB_SEED, ZB_LR, ZB_EPS, 4, unbiased=True))


# ------------------------------------------------------------------------- ZO-Muon's runner: random-mask MeZO
# OPTML-Group/ZO-Muon `llm/MeZOTrainer.py` (`--sparsity`): z kept value by value with probability p. Our mask
# stream, transcribed: value j of parameter i is kept where the float64 normal drawn with z at seed
# splitmix(step seed, 0x3A5C) is below Phi^-1(p).

def released_random_mask_mezo(model: Small, steps: int, seed: int, lr: float, eps: float, wd: float, keep: float,
                              mask_update: bool = True) -> dict:
    """`zo_perturb_parameters` + `zo_update` with our seeded z and mask (`mask_update=False`: a rule that is not
    the released one, the update along the unmasked z)."""
    names, theta, loss_at = functional(model)
    cut = float(torch.distributions.Normal(0.0, 1.0).icdf(torch.tensor(keep, dtype=torch.float64)))
    for step in range(steps):
        z = seeded_z(theta, seed, step)
        s = splitmix(seed, step)
        w = {n: torch.empty_like(t).normal_(generator=torch.Generator().manual_seed(splitmix(splitmix(s, 0x3A5C), i)))
             for i, (n, t) in enumerate(theta.items())}
        masked = {n: z[n] * (w[n] < cut) for n in names}
        loss1 = loss_at({n: theta[n] + masked[n] * eps for n in names})
        loss2 = loss_at({n: theta[n] - masked[n] * eps for n in names})
        g = (loss1 - loss2) / (2 * eps)
        for n in names:
            d = masked[n] if mask_update else z[n]
            theta[n] = theta[n] - lr * (g * d + (wd * theta[n] if decayed(n) else 0.0))
    return theta


@pytest.mark.parametrize("dual", ["true", "false"])
def test_random_mask_mezo_default_is_the_released_step(dual):
    model = Small("layer_norm")
    trainer = make("mezo-random-mask", model, seed=ZB_SEED, lr=str(ZB_LR), eps=str(ZB_EPS), weight_decay="0.1",
                   generator="torch-normal", dual_forward=dual)
    for step in range(ZB_STEPS):
        trainer.step(step, model)
    mine = dict(model.named_parameters())
    theirs = released_random_mask_mezo(Small("layer_norm"), ZB_STEPS, ZB_SEED, ZB_LR, ZB_EPS, 0.1, 0.8)
    assert close(mine, theirs)
    assert not close(mine, released_random_mask_mezo(Small("layer_norm"), ZB_STEPS, ZB_SEED, ZB_LR, ZB_EPS, 0.1, 0.8,
                                                     mask_update=False))
    assert not close(mine, released_random_mask_mezo(Small("layer_norm"), ZB_STEPS, ZB_SEED, ZB_LR, ZB_EPS, 0.1, 0.5))


# ------------------------------------------------------------------------------------------------ ZO-Muon
# OPTML-Group/ZO-Muon `llm/LowDimTrainer.py`. Our streams, transcribed: P of matrix i is factor 4 at the redraw
# step's seed; sample k's u is factor 1 at seed splitmix(step seed, k), its z for a vector parameter the normal at
# that seed.

def ns5(g: torch.Tensor) -> torch.Tensor:
    """`zeropower_via_newtonschulz5`, as released (its commented-out bfloat16 cast left out)."""
    a, b, c = (3.4445, -4.7750, 2.0315)
    x = g.mT if g.size(-2) > g.size(-1) else g
    x = x / (x.norm(dim=(-2, -1), keepdim=True) + 1e-7)
    for _ in range(5):
        A = x @ x.mT
        B = b * A + c * A @ A
        x = a * x + B @ x
    return x.mT if g.size(-2) > g.size(-1) else x


def released_zo_muon(model: nn.Module, steps: int, seed: int, lr: float, eps: float, wd: float, rank: int,
                     interval: int, samples: int, multiple: bool = True, opt: str = "muon",
                     vector_lr: float = 1e-7) -> dict:
    """`lowdim_zo_step` + `lowdim_zo_update` with our seeded P, u and z (rank capped at a matrix's rows: the
    released product fails there). `opt="sgd"`, another `vector_lr`: rules that are not the default."""
    names, theta, loss_at = functional(model)
    bases = {}
    for step in range(steps):
        s = splitmix(seed, step)
        seeds = [splitmix(s, k) for k in range(samples if multiple else 1)]
        dirs = []
        for k, sk in enumerate(seeds):
            d = {}
            for i, n in enumerate(names):
                if theta[n].ndim >= 2:
                    m, cols = theta[n].shape
                    r = min(rank, m)
                    if step % interval == 0:
                        q, rr = torch.linalg.qr(factor(splitmix(seed, step), 4, i, m, r), mode="reduced")
                        signs = torch.sign(torch.diagonal(rr))
                        signs[signs == 0] = 1.0
                        bases[n] = (q * signs).double()
                    d[n] = factor(sk, 1, i, r, cols).double()
                else:
                    d[n] = gauss(theta[n], sk, i)
            dirs.append(d)

        def full(d, n):
            return bases[n] @ d[n] if theta[n].ndim >= 2 else d[n]

        if multiple:
            base = loss_at(theta)
            grads = [(loss_at({n: theta[n] + eps * full(d, n) for n in names}) - base) / eps for d in dirs]
        else:
            d = dirs[0]
            grads = [(loss_at({n: theta[n] + eps * full(d, n) for n in names})
                      - loss_at({n: theta[n] - eps * full(d, n) for n in names})) / (2 * eps)]
        for n in names:
            est = sum(g * d[n] for g, d in zip(grads, dirs)) / len(grads)
            wd_n = wd * theta[n] if decayed(n) else 0.0
            if theta[n].ndim >= 2:
                step_dir = {"muon": ns5, "sgd": lambda x: x}[opt](est)
                theta[n] = theta[n] - lr * (bases[n] @ step_dir + wd_n)
            else:
                theta[n] = theta[n] - vector_lr * (est + wd_n)
    return theta


MUON = {"rank": "2", "interval": "4", "samples": "3", "weight_decay": "0.1", "lr": "0.05"}


def exact_close(mine: dict, theirs: dict) -> bool:
    """`close` for steps as small as ZO-Muon's vectors' (1e-7 x g): every parameter changed at all, and both
    agree to float64 rounding as Newton-Schulz's 15 products amplify it (4e-13 measured, 1e-11 allowed: a 1e-7
    step of a vector is 10^4 times that)."""
    return exact_close_on(lambda: Small("layer_norm"), mine, theirs)


def exact_close_on(model, mine: dict, theirs: dict) -> bool:
    start = dict(model().named_parameters())
    assert all(not torch.equal(theirs[n], start[n]) for n in theirs)
    return all(torch.allclose(p.detach(), theirs[n], rtol=1e-10, atol=1e-11) for n, p in mine.items())


@pytest.mark.parametrize("multiple", ["true", "false"])
@pytest.mark.parametrize("stacked", ["true", "false"])
def test_zo_muon_default_is_the_released_step(multiple, stacked):
    """The default (muon, several samples) and the one-sample mode, their 1-d parameters at the fixed 1e-7;
    `optimizer=sgd` and a vector rate equal to lr are other rules, and do not match the default."""
    model = Small("layer_norm")
    trainer = make("zo-muon", model, seed=ZB_SEED, eps=str(ZB_EPS), generator="torch-normal", multiple_sample=multiple,
                   stacked=stacked, vector_lr="1e-7", **MUON)
    for step in range(ZB_STEPS):
        assert trainer.step(step, model).forward_passes == (4 if multiple == "true" else 2)
    mine = dict(model.named_parameters())
    run = dict(rank=2, interval=4, samples=3, multiple=multiple == "true")
    assert exact_close(mine, released_zo_muon(Small("layer_norm"), ZB_STEPS, ZB_SEED, 0.05, ZB_EPS, 0.1, **run))
    assert not exact_close(mine, released_zo_muon(Small("layer_norm"), ZB_STEPS, ZB_SEED, 0.05, ZB_EPS, 0.1, **run, opt="sgd"))
    assert not exact_close(mine, released_zo_muon(Small("layer_norm"), ZB_STEPS, ZB_SEED, 0.05, ZB_EPS, 0.1, **run,
                                            vector_lr=0.05))


def test_zo_muon_sgd_switch_is_the_released_subspace_mezo():
    model = Small("layer_norm")
    trainer = make("zo-muon", model, seed=ZB_SEED, eps=str(ZB_EPS), generator="torch-normal", optimizer="sgd",
                   multiple_sample="false", vector_lr="1e-7", **MUON)
    for step in range(ZB_STEPS):
        trainer.step(step, model)
    theirs = released_zo_muon(Small("layer_norm"), ZB_STEPS, ZB_SEED, 0.05, ZB_EPS, 0.1, rank=2, interval=4, samples=3,
                              multiple=False, opt="sgd")
    assert exact_close(dict(model.named_parameters()), theirs)


# ---------------------------------------------------------------------------------------------- MeZO-SVRG
# amazon-science/mezo_svrg `models/llm_module.py`, `training_step_MeZO_SVRG` (+ `central_difference_grad_est`,
# `_me`). Batches: the Small model's loss on some rows of its data, taken in turn (an anchor step takes its own and
# the next ones). z_a is z at the step seed, z_1 and z_2 at splitmix(step seed, 1) and (., 2).

SVRG_ROWS = [[0, 1], [2, 3], [4, 0], [1, 2], [3, 4]]


class Rows:
    """The Small model's loss on rows of its data, stackable as the engine asks (`copies`)."""

    def __init__(self, model: Small, rows: list[int]) -> None:
        self.model, self.rows = model, rows

    def __call__(self) -> torch.Tensor:
        return self.copies(1)[0]

    def copies(self, n: int) -> torch.Tensor:
        m = self.model
        out = getattr(m, m.norm_name)(m.linear(m.x[self.rows].repeat(n, 1)))
        return ((out - m.y[self.rows].repeat(n, 1)) ** 2).view(n, -1).mean(1)


def released_mezo_svrg(model: Small, steps: int, seed: int, lr: float, anchor_lr: float, eps: float, q: int,
                       k: int, alias: bool = False) -> dict:
    """The paper's MeZO-SVRG as the released memory-efficient step computes it, with the anchor a real copy of
    the weights; `alias=True`: the released code's own anchor (`parameters.copy()` of (name, Parameter) pairs,
    the live weights): the first estimate's update is applied in place before the second estimate reads them."""
    names, theta, _ = functional(model)

    def loss_at(params, rows):
        with torch.no_grad():
            buffers = {"x": model.x[rows], "y": model.y[rows]}
            return torch.func.functional_call(model, {**params, **buffers}, ()).item()

    batches = iter(SVRG_ROWS * steps)
    anchor, za, ga = None, None, None
    for step in range(steps):
        s = splitmix(seed, step)
        if step % q == 0:
            rows = [next(batches) for _ in range(k)]
            z = {n: gauss(theta[n], s, i) for i, n in enumerate(names)}
            plus = sum(loss_at({n: theta[n] + eps * z[n] for n in names}, r) for r in rows) / k
            minus = sum(loss_at({n: theta[n] - eps * z[n] for n in names}, r) for r in rows) / k
            ga, za, anchor = (plus - minus) / (2 * eps), z, dict(theta)
            theta = {n: theta[n] - anchor_lr * ga * za[n] for n in names}
            continue
        rows = next(batches)
        z1 = {n: gauss(theta[n], splitmix(s, 1), i) for i, n in enumerate(names)}
        z2 = {n: gauss(theta[n], splitmix(s, 2), i) for i, n in enumerate(names)}

        def grad(point, z):
            return (loss_at({n: point[n] + eps * z[n] for n in names}, rows)
                    - loss_at({n: point[n] - eps * z[n] for n in names}, rows)) / (2 * eps)

        g1 = grad(theta, z1)
        if alias:
            theta = {n: theta[n] - lr * g1 * z1[n] for n in names}
            g2 = grad(theta, z2)
            theta = {n: theta[n] + lr * g2 * z2[n] - lr * ga * za[n] for n in names}
        else:
            g2 = grad(anchor, z2)
            theta = {n: theta[n] - lr * (g1 * z1[n] - g2 * z2[n] + ga * za[n]) for n in names}
    return theta


@pytest.mark.parametrize("dual", ["true", "false"])
def test_mezo_svrg_default_is_the_papers_step_and_the_released_alias_is_not(dual):
    model = Small("layer_norm")
    trainer = make("mezo-svrg", model, seed=ZB_SEED, lr="0.02", anchor_lr="0.05", eps=str(ZB_EPS), anchor_interval="3",
                   anchor_batches="3", generator="torch-normal", dual_forward=dual)
    batches = iter(SVRG_ROWS * ZB_STEPS)
    fresh = lambda: Rows(model, next(batches))  # noqa: E731
    passes = [trainer.step(step, fresh(), fresh).forward_passes for step in range(ZB_STEPS)]
    assert passes == [6, 4, 4] * 3 + [6] and trainer.forwards() == 14 / 3  # anchors: 3 batches x 2; corrected: 4
    mine = dict(model.named_parameters())
    theirs = released_mezo_svrg(Small("layer_norm"), ZB_STEPS, ZB_SEED, 0.02, 0.05, ZB_EPS, 3, 3)
    assert close(mine, theirs)
    assert not close(mine, released_mezo_svrg(Small("layer_norm"), ZB_STEPS, ZB_SEED, 0.02, 0.05, ZB_EPS, 3, 3,
                                              alias=True))


# ------------------------------------------------- the low-rank rules on several matrices, a 1 x h row, rank > a side

@pytest.mark.parametrize("rank", [2, 4])
def test_low_rank_defaults_hold_on_several_matrices_a_row_and_a_rank_above_a_side(rank):
    """On Wide: LOZO and LOZO-M factor the 1 x 3 row (released `ndim >= 2`) and, at rank 4, every matrix with a
    rank above its sides (U V^T is defined whatever r); SubZero treats the row as a vector (released `squeeze`)
    and caps its rank at a matrix's smaller side; ZO-Muon caps P's rank at a matrix's rows. Each matches its
    transcription, and SubZero does not match the rule that factors the row."""
    sets = {"rank": str(rank), "interval": str(NU), "weight_decay": "0.1"}
    args = (ZB_STEPS, ZB_SEED, ZB_LR, ZB_EPS)
    assert close_on(Wide, ours_on("lozo", Wide(), **sets), released_lozo(Wide(), *args, 0.1, rank=rank))
    assert close_on(Wide, ours_on("lozo-m", Wide(), **sets),
                    released_lozo(Wide(), *args, 0.1, momentum=0.9, rank=rank))
    subzero = ours_on("subzero", Wide(), rank=str(rank), interval=str(NU))
    assert close_on(Wide, subzero, released_subzero(Wide(), *args, rank=rank))
    assert not close_on(Wide, subzero, released_subzero(Wide(), *args, rank=rank, squeezed=False))
    muon = ours_on("zo-muon", Wide(), rank=str(rank), interval=str(NU), samples="3", weight_decay="0.1",
                   vector_lr="1e-7")
    theirs = released_zo_muon(Wide(), ZB_STEPS, ZB_SEED, ZB_LR, ZB_EPS, 0.1, rank=rank, interval=NU, samples=3)
    assert exact_close_on(Wide, muon, theirs)
