"""The runner loop on a tiny model: determinism, learning, best-on-dev selection."""
import math

import pytest
import torch

from benchmark.core import names
from benchmark.loop import Diverged, batch_indices, train
from benchmark.models import load_model
from benchmark.runner import build_run, sample
from benchmark.scoring import BatchLoss, Encoder, classification_loss
from methods.hizoo import HiZOO
from methods.registry import METHODS
from tests.helpers import CPU, HELD, SETTINGS, TRAINED


def configure(method: str, steps: int, model: str = "tiny-random-llama", seed: int = 0, task: str = "toy",
              **extra: str):
    """A run's configs for a toy task (tests/helpers.py registers them), built as `benchmark run` builds them."""
    sets = {"batch_size": "8", "eval_every": "5", **SETTINGS.get(method, {}), **extra}
    return build_run(method, task, sets, model=model, steps=steps, seed=seed)


def run_tiny(method: str, steps: int, seed: int = 0, **extra: str):
    cfg, hp = configure(method, steps, seed=seed, **extra)
    _, _, splits = sample(cfg)
    loaded = load_model(cfg.model, CPU, torch.float32)
    return train(cfg, hp, loaded, splits, CPU, progress=False), loaded, splits


def mean_loss(loaded, examples) -> float:
    model = loaded.model.eval()
    with torch.no_grad():
        return classification_loss(model, Encoder(loaded.tokenizer, 128, CPU).collate(examples)).item()


@pytest.mark.parametrize("method", ["mezo", "ft"])
def test_same_seed_gives_identical_losses(method):
    first, _, _ = run_tiny(method, 6)
    second, _, _ = run_tiny(method, 6)
    third, _, _ = run_tiny(method, 6, seed=1)
    assert first.losses == second.losses
    assert first.losses != third.losses


@pytest.mark.parametrize("method,steps", [("mezo", 150), ("ft", 30)])
def test_training_lowers_the_training_loss(method, steps):
    cfg, hp = configure(method, steps)
    examples = sample(cfg)[2].train
    loaded = load_model(cfg.model, CPU, torch.float32)
    model = loaded.model
    trainer = METHODS.get(method)(hp, model, lambda step: 1.0, 0)
    encoder = Encoder(loaded.tokenizer, 128, CPU)
    before = mean_loss(loaded, examples)
    for step, idx in zip(range(steps), batch_indices(len(examples), cfg.batch_size, 0)):
        model.train(trainer.first_order)
        batch = encoder.collate([examples[i] for i in idx])
        trainer.step(step, BatchLoss(model, batch))
    after = mean_loss(loaded, examples)
    assert after < 0.9 * before, (before, after)


def test_run_reports_best_dev_step_and_measurements():
    result, loaded, splits = run_tiny("mezo", 10, eval_every="2")
    assert result.best_step in range(0, 11, 2)
    assert 0.0 <= result.test <= 1.0
    assert result.forward_passes == 20
    assert result.steps_per_s > 0 and result.peak_memory_gb > 0


@pytest.mark.parametrize("method", ["mezo", "ft"])
def test_non_finite_loss_stops_the_run(method, monkeypatch):
    monkeypatch.setattr(BatchLoss, "__call__", lambda self: torch.tensor(float("nan"), requires_grad=True))
    monkeypatch.setattr(BatchLoss, "copies", lambda self, n: torch.full((n,), float("nan")))
    with pytest.raises(Diverged, match="became nan at step 1"):
        run_tiny(method, 3)


def test_batches_cover_every_example_each_epoch():
    gen = batch_indices(10, 4, seed=0)
    first_epoch = [i for _ in range(5) for i in next(gen)][:10]
    assert sorted(first_epoch) == list(range(10))
    assert all(len(next(gen)) == 4 for _ in range(7))


def test_zero_shot_scores_without_training():
    cfg, hp = configure("zero-shot", 50)
    assert cfg.steps == 0  # its record says it trained none (MLflow param `steps`)
    _, _, splits = sample(cfg)
    loaded = load_model(cfg.model, CPU, torch.float32)
    before = {n: p.clone() for n, p in loaded.model.named_parameters()}
    result = train(cfg, hp, loaded, splits, CPU, progress=False)
    assert result.forward_passes == 0 and result.losses == [] and result.best_step == 0
    assert 0.0 <= result.test <= 1.0
    assert math.isnan(result.peak_memory_gb) and math.isnan(result.steps_per_s)  # not measured, not zero
    assert all(torch.equal(before[n], p) for n, p in loaded.model.named_parameters())


@pytest.mark.parametrize("method", ["zero-shot", *HELD])
def test_every_method_runs_on_a_masked_lm(method):
    """Table 3's path: RoBERTa-style model, candidates read at the mask, through the real loop
    (DiZO projects twice, on RoBERTa's query/value layers); the LoRA twins the other cases trim too (`HELD`)."""
    cls = METHODS.get(method)
    cfg, hp = configure(method, 4, model="tiny-random-roberta", eval_every="2",
                        **({"projection_interval": "2"} if cls.projects else {}))
    _, _, splits = sample(cfg)
    loaded = load_model(cfg.model, CPU, torch.float32)
    assert loaded.kind == "masked"
    logged: dict[int, dict[str, float]] = {}
    result = train(cfg, hp, loaded, splits, CPU, on_metrics=lambda m, s: logged.setdefault(s, {}).update(m),
                   progress=False)
    assert len(result.losses) == (4 if cls.trains else 0)
    assert all(math.isfinite(x) for x in result.losses) and 0.0 <= result.test <= 1.0
    assert (result.forward_passes > 0) == cls.trains
    if issubclass(cls, HiZOO):  # the scale spread at every evaluation, step 0 included
        assert all(names.HIZOO_SCALE_MEDIAN in logged[s] for s in (0, 2, 4)), logged
    if cls.projects:  # each round's diagnostics at its step
        assert {names.DIZO_RATIO_AT_BOUND, names.DIZO_TS_MEAN, names.DIZO_LOSS_AFTER} <= set(logged[2]), logged[2]


def test_generation_task_trains_on_the_answer_and_reports_f1_and_em():
    cfg, hp = configure("ft", 10, task="toy-qa", batch_size="4")
    task, _, splits = sample(cfg)
    loaded = load_model(cfg.model, CPU, torch.float32)
    result = train(cfg, hp, loaded, splits, CPU, progress=False, generation=task.generation)
    assert result.losses[-1] < result.losses[0]  # the answer tokens' LM loss falls
    assert set(result.test_extra) == {"exact_match"}
    assert 0.0 <= result.test_extra["exact_match"] <= result.test <= 1.0
    assert names.TEST_PREFIX + "exact_match" in result.summary_metrics()


def test_layer_drift_is_logged_for_figure_1():
    """||theta_t - theta_0|| per projection and layer: zero before training, grown after, at each eval."""
    cfg, hp = configure("ft", 6, eval_every="3", log_drift="true")
    _, _, splits = sample(cfg)
    logged: dict[int, dict] = {}
    train(cfg, hp, load_model(cfg.model, CPU, torch.float32), splits, CPU,
          on_metrics=lambda m, step: logged.setdefault(step, {}).update(m), progress=False)
    keys = {k for k in logged[0] if k.startswith("drift/")}
    assert keys == {f"drift/{r}/{layer}" for r in "qkvo" for layer in (0, 1)}  # 2 layers, 4 projections
    assert all(logged[0][k] == 0.0 for k in keys)
    assert all(logged[6][k] > logged[3][k] > 0 for k in keys) and "drift/q/0" not in logged[1]


def test_bf16_mixed_keeps_fp32_weights_and_runs_the_matmuls_in_bf16():
    """`--dtype bf16-mixed`: the weights and the ZO update stay fp32; the forwards' matmuls run in bf16."""
    from benchmark.models import resolve_precision
    from tests.helpers import Loop, make, params_of, tiny

    precision = resolve_precision("bf16-mixed", CPU)
    assert (precision.weights, precision.autocast) == (torch.float32, torch.bfloat16)
    loaded = tiny("llama")
    trainer = make("mezo", loaded.model)
    loaded.model.eval()
    seen = []
    loaded.model.lm_head.register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    before = params_of(loaded.model)
    with precision.compute(CPU):
        trainer.step(0, Loop(loaded).loss_fn())
    assert seen and set(seen) == {torch.bfloat16}
    after = params_of(loaded.model)
    assert all(p.dtype == torch.float32 for p in after.values())
    assert any(not torch.equal(before[n], after[n]) for n in after)


@pytest.mark.parametrize("pays,expected", [(True, "bf16-mixed"), (False, "fp32")])
def test_auto_precision_on_a_cpu_follows_the_measurement(pays, expected, monkeypatch):
    """`auto` picks bf16-mixed on a CPU only where bf16 measured faster; never bf16 weights; fp16 on CUDA."""
    import benchmark.models as models

    monkeypatch.setattr(models, "bf16_pays", lambda: pays)
    assert models.resolve_precision("auto", CPU).name == expected
    assert models.resolve_precision("auto", torch.device("cuda")).name == "fp16"
