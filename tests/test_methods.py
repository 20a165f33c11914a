"""Every method of the paper: the properties that make each one what it claims to be."""
import collections
import dataclasses
from pathlib import Path

import pytest
import torch
from torch import nn

from benchmark.core.errors import BenchmarkError
from benchmark.core.settings import apply_overrides, validate
from methods.layers import find_modules
from methods.registry import METHODS
from tests.helpers import BUDGET, HELD, LORA, PAPERS, SETTINGS, TRAINED, Loop, make, params_of, tiny


@pytest.mark.parametrize("name", METHODS.names())
def test_every_registered_method_declares_its_contract(name):
    """What the harness asks a method instead of parsing its name: valid, documented hyperparameters
    and the four declarations, consistent with each other."""
    cls = METHODS.get(name)
    assert dataclasses.is_dataclass(cls.Hparams)
    assert all(f.metadata.get("help") for f in dataclasses.fields(cls.Hparams)), name
    validate(cls.Hparams())  # the defaults are valid settings
    assert all(isinstance(flag, bool) for flag in (cls.first_order, cls.trains, cls.projects, cls.replays)), name
    assert cls.trains or not (cls.first_order or cls.projects or cls.replays), name  # nothing trains: nothing to declare
    assert not (cls.replays and cls.first_order), name  # a gradient step is not a function of a few scalars
    assert cls.replays == (cls.trains and not cls.first_order) == bool(getattr(cls, "record_keys", ())), name
    if cls.trains:  # a checkpoint holds what replaying a log does not rebuild
        assert callable(cls.state_dict) and callable(cls.load_state_dict), name
    fields = {f.name for f in dataclasses.fields(cls.Hparams)}
    assert cls.projects == ("projection_interval" in fields) == callable(getattr(cls, "project", None)), name


def test_a_method_that_leaves_a_flag_undeclared_or_names_no_flag_is_refused_where_it_is_defined():
    from methods.base import Declared

    with pytest.raises(TypeError, match="declares no projects, replays"):
        type("Half", (Declared,), {}, first_order=False, trains=True)
    with pytest.raises(TypeError, match="replay is not a contract flag"):
        type("Typo", (Declared,), {}, first_order=False, trains=True, projects=False, replay=True)
    child = type("Child", (METHODS.get("mezo"),), {}, projects=True)  # inherits the rest
    assert (child.first_order, child.trains, child.projects, child.replays) == (False, True, True, True)


@pytest.mark.parametrize("name", ["dizo-fo", "dizo-fo-lora"])
def test_dizo_fo_takes_only_the_settings_it_uses(name):
    """Its Adam search has no eps_p or eta_p: setting them is an error, not a silent no-op."""
    fields = {f.name for f in dataclasses.fields(METHODS.get(name).Hparams)}
    assert {"projection_lr", "projection_rule", "clip_range", "reinit"} <= fields
    for unused in ("projection_eps", "projection_step_size"):
        with pytest.raises(BenchmarkError, match=f"unknown setting '{unused}'"):
            apply_overrides([METHODS.get(name).Hparams()], {unused: "0.1"})


def test_every_trained_method_has_toy_settings():
    missing = [name for name in TRAINED if "lr" not in SETTINGS[name]]
    assert not missing, f"{missing}: declare the method's toy settings (`toy` on its class, a learning rate at least)"


@pytest.mark.parametrize("name", TRAINED)
def test_a_step_does_what_the_method_declares(name):
    """first_order: gradients reach the trained weights (and only then); each step runs the forward passes it
    reports (counted as batch copies through the model), their mean over a cycle the method's `forwards`
    (MeZO-SVRG: an anchor step, then corrected ones); projects: the step that ends an interval adds exactly the
    projection's forward passes."""
    cls = METHODS.get(name)
    loaded = tiny()
    trainer = make(name, loaded.model, **({"projection_interval": "2"} if cls.projects else {}))
    loop, rows = Loop(loaded), []
    hook = loaded.model.register_forward_pre_hook(
        lambda module, args, kwargs: rows.append(next(t.shape[0] for t in (*args, *kwargs.values())
                                                      if isinstance(t, torch.Tensor))), with_kwargs=True)
    reported, counted = [], []
    for step in range(trainer.cycle()):
        rows.clear()
        reported.append(trainer.step(step, loop.loss_fn(), loop.loss_fn).forward_passes)
        counted.append(sum(rows) / 8)
    hook.remove()
    first = reported[0]
    assert reported == counted and sum(reported) / len(reported) == trainer.forwards(), (name, reported, counted)
    assert trainer.state_copies() >= 0
    grads = [p.grad for p in loaded.model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads) if cls.first_order else all(g is None for g in grads), name
    if trainer.cycle() > 1:
        return
    second = trainer.step(1, loop.loss_fn(), loop.loss_fn).forward_passes
    assert second - first == (trainer.projection_passes() if cls.projects else 0), (name, first, second)


STEPS_ZO = 150  # full batch, seed 0: every ZO method's loss ratio is 0.72-0.83 (full weights), 0.77-0.82 (LoRA)
STEPS_FO = 30
LEARN_CHECK = 10  # steps between the learning test's looks at the loss (a forward on the 16 examples)


FIVE_FORWARDS = ("zo-sgd-cons",)  # 150 of its five-forward steps cost 10 s on a 2-core Xeon: marked slow
# The LoRA twins of ZO-Bench's optimizers and Forward-Grad learn as their base does, through adapters whose
# learning mezo-lora, hizoo-lora, dizo-lora and dizo-fo-lora hold here; theirs is held by the adapter test
# below and the golden trajectories (their 250-step runs measured 0.67-0.84 of the start, seed 0).
LEARNS = HELD


class CasesPerMethod:
    """A pytest plugin: each method's parametrised cases (those with a registered method's name among their
    parameters) in a collection, but the `gpu` ones (`make test` deselects them)."""

    def __init__(self) -> None:
        self.cases: collections.Counter = collections.Counter()

    def pytest_collection_modifyitems(self, items) -> None:
        names = set(METHODS.names())
        self.cases.update(value for item in items if hasattr(item, "callspec") and not item.get_closest_marker("gpu")
                          for value in item.callspec.params.values() if isinstance(value, str) and value in names)


def test_a_method_outside_the_papers_keeps_to_its_share_of_the_suite():
    """A new method adds its fidelity test, its golden trajectory and at most its budget of parametrised cases
    (each of the toy size their tests declare), so the suite grows by a known share per method, not by one case
    in every parametrised test. Counted on the whole suite's collection."""
    counter = CasesPerMethod()
    assert pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", str(Path(__file__).parent)],
                       plugins=[counter]) == 0
    cases = counter.cases
    over = {m: cases[m] for m in TRAINED if m not in PAPERS and cases[m] > BUDGET["twin" if m in LORA else "base"]}
    assert not over, f"over the budget {BUDGET}: {over}"
    assert all(cases[m] > 0 for m in TRAINED) and cases["mezo"] > BUDGET["base"], cases


@pytest.mark.parametrize("method", [pytest.param(m, marks=pytest.mark.slow) if m in FIVE_FORWARDS else m
                                    for m in LEARNS])
def test_every_method_lowers_the_training_loss(method):
    """Full batch: every step and every projection round sees the same 16 examples, so a ZO method
    descends the very loss measured here and the margin to the 5% asked is wide. With mini-batches
    of 8 out of 32 the drop was a draw, not a number: MeZO's ratio ranged 0.32-0.96 over 6 seeds, and
    DiZO's rounds made its run chaotic (a 1e-15 relative change of the start moved it from 0.42 to
    0.96 in float64), so a CPU's rounding could fail it."""
    loaded = tiny()
    loop = Loop(loaded, n=16, batch_size=16)
    trainer = make(method, loaded.model)
    before = loop.mean_loss()
    steps = STEPS_FO if METHODS.get(method).first_order else STEPS_ZO
    for start in range(0, steps, LEARN_CHECK):  # each method's share of the suite: it stops once it has learnt
        loop.run(trainer, LEARN_CHECK, start=start)
        after = loop.mean_loss()
        if after < 0.95 * before:
            break
    assert after < 0.95 * before, (before, after)


@pytest.mark.parametrize("method", LORA)
def test_lora_variants_change_only_adapter_weights(method):
    loaded = tiny("opt")
    trainer = make(method, loaded.model)
    before = params_of(loaded.model)
    assert any("lora_A" in n for n in before) and any("v_proj.lora_B" in n for n in before)
    assert not any("k_proj.lora" in n for n in before)  # q and v only
    Loop(loaded).run(trainer, 25)
    after = params_of(loaded.model)
    for name, value in before.items():
        if "lora_" in name:
            continue
        assert torch.equal(value, after[name]), name
    assert any(not torch.equal(v, after[n]) for n, v in before.items() if "lora_B" in n)


def test_dizo_without_projection_is_mezo_exactly():
    runs = []
    for method, sets in (("mezo", {}), ("dizo", {"projection_interval": "1000"})):
        loaded = tiny()
        trainer = make(method, loaded.model, **{"lr": "2e-3", **sets})
        runs.append((Loop(loaded).run(trainer, 20), params_of(loaded.model)))
    (mezo_losses, mezo_params), (dizo_losses, dizo_params) = runs
    assert mezo_losses == dizo_losses
    assert all(torch.equal(mezo_params[n], dizo_params[n]) for n in mezo_params)


@pytest.mark.parametrize("method", ["dizo", "dizo-fo"])
@pytest.mark.parametrize("tau", ["0.2", "0.05"])
def test_projection_keeps_every_ratio_inside_the_clip_range(method, tau):
    loaded = tiny("opt")
    strong = {"dizo": {"projection_step_size": "50"}, "dizo-fo": {"projection_lr": "1"}}[method]  # push on the bounds
    trainer = make(method, loaded.model, clip_range=tau, projection_interval="1000", **strong)
    loop = Loop(loaded)
    loop.run(trainer, 10)
    before = trainer.norms()
    trainer.project(10, loop.loss_fn)
    ratio = trainer.norms() / before
    t = float(tau)
    assert len(ratio) == 4  # q and v of 2 layers
    assert torch.all(ratio >= 1 - t - 1e-5) and torch.all(ratio <= 1 + t + 1e-5), ratio
    assert torch.allclose(ratio, trainer.last_ratios, atol=1e-4)
    assert not torch.allclose(ratio, torch.ones_like(ratio), atol=1e-3)  # the search moved


def test_projection_with_gamma_equal_to_delta_norm_is_the_identity():
    loaded = tiny("opt")
    trainer = make("dizo", loaded.model, projection_interval="1000")
    Loop(loaded).run(trainer, 5)
    before = params_of(loaded.model)
    trainer._apply(torch.ones(len(trainer.layers), dtype=torch.float64))
    after = params_of(loaded.model)
    assert all(torch.equal(before[n], after[n]) for n in before)


def test_dizo_keeps_theta0_only_for_projected_layers():
    loaded = tiny("opt")
    trainer = make("dizo", loaded.model, projected_layers="q")
    names = [n for n, _ in trainer.layers]
    assert names == ["model.decoder.layers.0.self_attn.q_proj.weight", "model.decoder.layers.1.self_attn.q_proj.weight"]
    assert sum(b.numel() for b in trainer.base) == 2 * 32 * 32


@pytest.mark.parametrize("method,sets", [
    ("dizo", {"projection_interval": "4"}),
    ("dizo", {"projection_interval": "4", "projection_base": "previous", "reinit": "false"}),
    ("dizo", {"projection_interval": "4", "projection_target": "lr", "clip_range": "none"}),
    ("hizoo", {"hessian_smooth": "0.1"}),
    ("hizoo", {"hessian_smooth": "0.1", "hessian_rule": "inverse"}),
])
def test_rollback_restores_the_checkpoint(method, sets):
    loaded = tiny("opt")
    trainer = make(method, loaded.model, **sets)
    loop = Loop(loaded)
    loop.run(trainer, 3)
    checkpoint, saved = trainer.checkpoint(), params_of(loaded.model)
    loop.run(trainer, 10, start=3)
    trainer.restore(checkpoint)
    after = params_of(loaded.model)
    for name in saved:
        torch.testing.assert_close(after[name], saved[name], rtol=1e-4, atol=1e-5)


class Quadratic(nn.Module):
    """0.5 * (x0^2 + 1000 x1^2): condition number 1000, low-dimensional enough for a diagonal
    estimate from one direction per step to carry per-coordinate signal."""

    def __init__(self):
        super().__init__()
        self.x = nn.Parameter(torch.ones(2, dtype=torch.float64))
        self.register_buffer("a", torch.tensor([1.0, 1000.0], dtype=torch.float64))

    def forward(self):
        return 0.5 * (self.a * self.x**2).sum()

    def copies(self, n: int) -> torch.Tensor:
        """No batch to stack: the sequential form (dual_forward=false) asks for one copy at a time."""
        return self().expand(n)


def steps_to_target(method: str, lr: float, seed: int, limit: int = 2000, **sets: str) -> int:
    model = Quadratic()
    target = 1e-4 * model().item()
    trainer = make(method, model, seed=seed, lr=str(lr), eps="1e-4", dual_forward="false", **sets)  # no batch to stack
    for step in range(limit):
        trainer.step(step, model)
        with torch.no_grad():
            loss = model().item()
        if not loss < 1e6:
            return limit
        if loss < target:
            return step + 1
    return limit


def best_median_steps(method: str, limit: int = 2000, **sets: str) -> float:
    """Each method at its own best learning rate: median steps over 7 direction seeds (a run stops at `limit`).
    1e-4 and 3e-4 are left out: both methods' medians there are the 2000-step limit (measured), and those runs
    were a third of the time."""
    import statistics

    best = limit
    for lr in [3e-2, 1e-2, 3e-3, 1e-3]:  # runs past the best so far stop there: they cannot lower the minimum
        best = min(best, statistics.median(steps_to_target(method, lr, seed, best, **sets) for seed in range(7)))
    return best


@pytest.mark.slow
def test_hizoo_inverse_rule_beats_mezo_on_an_ill_conditioned_quadratic():
    """The paper's preconditioning (hessian_rule=inverse) pays off here. The released rule grows the
    perturbation where curvature is high and never reaches the target at any of these rates (measured:
    2000 steps, the limit): a finding about the released code, reported in README. Best medians with philox z
    (2026-12-04, Xeon): MeZO 1839 steps (lr 1e-3), the inverse rule 372 (lr 3e-2)."""
    hizoo = best_median_steps("hizoo", hessian_smooth="0.1", hessian_rule="inverse")
    limit = int(hizoo / 0.8) + 1  # MeZO's runs stop once past what would fail the claim: the same verdict
    mezo = best_median_steps("mezo", limit)
    assert hizoo < 0.8 * mezo, (hizoo, mezo)


@pytest.mark.parametrize("rule", ["released", "inverse"])
def test_hizoo_hessian_stays_positive_and_finite(rule):
    model = Quadratic()
    trainer = make("hizoo", model, lr="1e-2", eps="1e-4", hessian_smooth="0.1", hessian_rule=rule, dual_forward="false")
    for step in range(500):
        trainer.step(step, model)
        s = trainer.scales[0]
        assert torch.all(s > 0) and torch.all(torch.isfinite(s)), (step, s)
    assert not torch.allclose(s, torch.ones_like(s))  # the estimate moved off the identity


@pytest.mark.parametrize("arch,expected", [
    ("llama", ["model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.v_proj"]),
    ("opt", ["model.decoder.layers.0.self_attn.q_proj", "model.decoder.layers.0.self_attn.v_proj"]),
])
def test_projected_layer_mapping_finds_q_and_v(arch, expected):
    names = [n for n, _ in find_modules(tiny(arch).model, ("q", "v"))]
    assert sorted(names[:2]) == expected and len(names) == 4  # OPT defines v_proj before q_proj


def test_projected_layer_mapping_finds_q_and_v_in_roberta():
    import transformers

    config = transformers.RobertaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                        num_attention_heads=4, vocab_size=100)
    model = transformers.AutoModelForMaskedLM.from_config(config)
    names = [n for n, _ in find_modules(model, ("q", "v"))]
    assert names == [f"roberta.encoder.layer.{i}.attention.self.{r}" for i in (0, 1) for r in ("query", "value")]
    dense = [n for n, _ in find_modules(model, ("dense",))]
    assert "roberta.encoder.layer.0.output.dense" in dense and "roberta.encoder.layer.0.attention.output.dense" not in dense


@pytest.mark.parametrize("sets,message", [
    ({"clip_range": "1.5"}, "clip_range=1.5 is out of range"),
    ({"projection_interval": "0"}, "projection_interval=0 is out of range"),
    ({"projection_base": "theta_t"}, "projection_base='theta_t' is out of range"),
])
def test_dizo_hyperparameters_are_validated(sets, message):
    hp = METHODS.get("dizo").Hparams()
    apply_overrides([hp], sets)
    with pytest.raises(BenchmarkError, match=message):
        validate(hp)


@pytest.mark.parametrize("clip", ["0.2", "none"])
def test_clip_range_none_disables_clipping(clip):
    """A round with a large search step: clipped, every ratio stays in [0.8, 1.2]; with clip_range=none some
    ratio leaves it (the search ran unclipped, not merely parsed)."""
    loaded = tiny()
    trainer = make("dizo", loaded.model, lr="2e-3", projection_interval="4", projection_step_size="500",
                   clip_range=clip)
    Loop(loaded).run(trainer, 4)
    ratios = trainer.last_ratios
    assert ratios is not None and len(ratios) > 1
    inside = ((ratios >= 0.8 - 1e-6) & (ratios <= 1.2 + 1e-6)).all().item()  # a bound, less the 1e-8 guard over ts
    assert inside if clip == "0.2" else not inside, ratios


@pytest.mark.parametrize("method,key", [("dizo", "projected_layers"), ("mezo-lora", "lora_roles")])
def test_unknown_projected_role_is_a_clear_error(method, key):
    with pytest.raises(BenchmarkError, match=f"{key}='q,attn' is out of range: must be a comma list of q,k,v,o,dense"):
        make(method, tiny().model, **{key: "q,attn"})


def test_fine_tuning_a_masked_lm_lowers_the_loss():
    """The masked path carries gradients end to end (random RoBERTa starts on a plateau: 60 steps)."""
    loaded = tiny("roberta")
    loop = Loop(loaded)
    before = loop.mean_loss()
    loop.run(make("ft", loaded.model), 60)
    assert loop.mean_loss() < 0.8 * before
