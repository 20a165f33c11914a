"""On a CUDA device (`pytest -m gpu`; deselected elsewhere by pyproject's addopts, so they never run as skips on
a CPU): half precision restored exactly, Triton's z against the CPU kernel's, runs on the device that replay
on the CPU, and a step that never makes the device wait outside its loss read, under torch's own sync
debugging. Part of the prepared GPU check (`make gpu-check`)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmark.loop import replay_log
from benchmark.models import load_model
from methods.registry import METHODS
from methods.zo import cpu, gpu
from methods.zo.generators import mix
from tests.helpers import CPU, Loop, TRAINED, make, params_of

pytestmark = pytest.mark.gpu
CUDA = torch.device("cuda")


@pytest.fixture(autouse=True)
def device() -> None:
    if not torch.cuda.is_available():
        pytest.fail("pytest -m gpu needs a CUDA device")


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_best_on_dev_in_half_precision_on_the_device_is_the_clone_bit_for_bit(dtype):
    """200 MeZO steps on the device, best at step 100: the host copy restores the clone taken then."""
    loaded = load_model("tiny-random-llama", CUDA, dtype)
    trainer, loop = make("mezo", loaded.model), Loop(loaded)
    assert trainer.checkpoint_kind == "host"
    for step in range(200):
        trainer.step(step, loop.loss_fn(), loop.loss_fn)
        if step == 99:
            best, clone = trainer.checkpoint(), [p.detach().clone() for p in trainer.engine.params]
    trainer.restore(best)
    assert all(torch.equal(a, b) for a, b in zip(trainer.engine.params, clone))


def test_triton_z_on_the_device_is_the_cpu_kernels_to_rounding():
    n, key, start = 1 << 22, mix(2026, 7), 3
    on_gpu = torch.empty(n, device=CUDA)
    gpu.fill(on_gpu, key, start)
    on_cpu = np.empty(n, np.float32)
    cpu.fill(on_cpu, key, start)
    assert np.abs(on_gpu.cpu().numpy() - on_cpu).max() <= 1e-5


@pytest.mark.parametrize("method", ["mezo", "dizo"])
def test_a_run_on_the_device_replays_from_its_seed_log_on_the_cpu(method):
    """20 steps on the device (DiZO: rounds at 10 and 20), the log's records replayed onto the CPU's copy of the
    same start: the weights agree to 1e-5 of their largest magnitude (the kernels round log, sin and cos
    differently; nothing else may differ)."""
    on_device = load_model("tiny-random-llama", CUDA, torch.float32)
    sets = {"projection_interval": "10"} if METHODS.get(method).projects else {}
    trainer, loop = make(method, on_device.model, **sets), Loop(on_device)
    records = [trainer.step(step, loop.loss_fn(), loop.loss_fn).record for step in range(20)]
    on_cpu = load_model("tiny-random-llama", CPU, torch.float32)
    replayer = make(method, on_cpu.model, **sets)
    replay_log(replayer, [{**r, "step": k + 1} for k, r in enumerate(records)], 20)
    ran, again = params_of(on_device.model), params_of(on_cpu.model)
    size = max(w.abs().max().item() for w in again.values())
    assert max((ran[n].cpu() - again[n]).abs().max().item() for n in ran) <= 1e-5 * size


class HostLosses:
    """The loss closure, its losses copied to the host here (the one read a step is allowed), so that whatever
    else a step does runs under torch's sync debug mode."""

    def __init__(self, loop: Loop) -> None:
        self.inner = loop.loss_fn()

    def __call__(self) -> torch.Tensor:
        return self.copies(1)[0]

    def copies(self, n: int) -> torch.Tensor:
        out = self.inner.copies(n)
        torch.cuda.set_sync_debug_mode("default")
        try:
            return out.cpu()
        finally:
            torch.cuda.set_sync_debug_mode("error")


@pytest.mark.parametrize("method", [m for m in TRAINED if not METHODS.get(m).first_order and "forward-grad" not in m])
def test_a_step_never_waits_on_the_device_outside_its_loss_read(method):
    """Two steps to settle (the first measures a forward alone, then the fit is decided), then two under
    `torch.cuda.set_sync_debug_mode("error")`: any .item(), host copy, nonzero or boolean index raises.
    Forward-Grad reads its loss and derivative together from the forward-mode pass (tests/test_gpu_path.py)."""
    loaded = load_model("tiny-random-llama", CUDA, torch.float32)
    sets = {"projection_interval": "1000", "anchor_interval": "1000"}
    fields = METHODS.get(method).Hparams.__dataclass_fields__
    trainer, loop = make(method, loaded.model, **{k: v for k, v in sets.items() if k in fields}), Loop(loaded)
    for step in range(2):
        trainer.step(step, loop.loss_fn(), loop.loss_fn)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for step in range(2, 4):
            losses = HostLosses(loop)
            trainer.step(step, losses, lambda: losses)
    finally:
        torch.cuda.set_sync_debug_mode("default")
