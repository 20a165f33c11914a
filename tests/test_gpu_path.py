"""CUDA's path of every ZO method, held without a GPU: inside `methods.zo.path.cuda_on_cpu()` the engine takes the
path it takes on CUDA (Triton's kernels, one launch a parameter, no thread pool, the stacked batch decided once)
on CPU tensors, and Triton's interpreter runs the kernels. Each step's Triton launches and the torch ops it runs
outside its forwards are counted against a stated bound, and every call that would synchronise a GPU with the
host (`.item()`, `.tolist()`, `.cpu()`, `.numpy()`, `nonzero`, boolean indexing, a tensor read as a Python
number) is caught, except the loss scalars a method needs: those of the tensors its forwards return.
"""
from __future__ import annotations

import contextlib
import os
import sys

import pytest
import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from methods.dizo_fo import DiZOFO
from methods.registry import METHODS
from methods.zo import gpu, path
from tests.helpers import TRAINED, make

pytestmark = pytest.mark.slow

ZO = [m for m in TRAINED if not METHODS.get(m).first_order]
# settings under which a few steps hold every kind of step a method has: DiZO's round, MeZO-SVRG's anchor,
# the low-rank methods' redraw
CYCLES = {"projection_interval": "2", "anchor_interval": "2", "interval": "2"}


class Tiny(nn.Module):
    """A one-layer Llama with a 64-token vocabulary (Triton's interpreter walks every value in Python-driven
    numpy): the loss of a fixed batch, whole or on n stacked copies, as the runner's `BatchLoss` gives it."""

    def __init__(self) -> None:
        super().__init__()
        from transformers import LlamaConfig, LlamaForCausalLM

        config = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                             num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=32)
        with torch.random.fork_rng():
            torch.manual_seed(0)
            self.lm = LlamaForCausalLM(config).eval()
            self.register_buffer("ids", torch.randint(0, 64, (4, 8)))

    def __call__(self) -> torch.Tensor:
        return self.copies(1)[0]

    def copies(self, n: int) -> torch.Tensor:
        ids = self.ids.repeat(n, 1)
        logits = self.lm(input_ids=ids).logits[:, :-1]
        losses = nn.functional.cross_entropy(logits.reshape(-1, 64), ids[:, 1:].reshape(-1), reduction="none")
        return losses.view(n, -1).mean(1)


class Launches:
    """Counts Triton launches (`kernel[grid](...)`) through `methods.zo.gpu`; what the interpreter does to run one
    on the host (copies to numpy and back) is the launch's, not the step's: the counters pause inside it."""

    def __init__(self, monkeypatch) -> None:
        self.count = 0
        self.paused: list = []  # the step's Ops and Syncs
        kernels = gpu._kernels()
        outer = self

        class Counted:
            def __init__(self, kernel) -> None:
                self.kernel = kernel

            def __getitem__(self, grid):
                outer.count += 1
                launch = self.kernel[grid]

                def run(*args, **kwargs):
                    for counter in outer.paused:
                        counter.inside += 1
                    try:
                        return launch(*args, **kwargs)
                    finally:
                        for counter in outer.paused:
                            counter.inside -= 1

                return run

        class Module:
            def __getattr__(self, name):
                return Counted(getattr(kernels, name))

        monkeypatch.setattr(gpu, "_kernels", lambda: Module())


class Ops(TorchDispatchMode):
    """Counts the aten ops a step runs outside its forwards (`forward` says when one runs)."""

    def __init__(self) -> None:
        super().__init__()
        self.count, self.inside = 0, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if not self.inside:
            self.count += 1
        return func(*args, **(kwargs or {}))


SYNCING = {"item", "tolist", "cpu", "numpy", "nonzero", "__bool__", "__float__", "__int__", "__index__"}


class Syncs(TorchFunctionMode):
    """Records every call that would make a GPU wait for the host, but those on the losses the forwards gave
    (inside the forwards too: the engine's substitution runs there). A copy to the host cannot be told from a
    move between CPU tensors here: the `gpu`-marked test holds those on a device, under torch's sync debug mode."""

    def __init__(self) -> None:
        super().__init__()
        self.losses: dict[int, torch.Tensor] = {}  # the tensors the forwards returned, held (ids stay theirs)
        self.caught: list[str] = []
        self.inside = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self.inside:
            return func(*args, **kwargs)
        name = getattr(func, "__name__", str(func))
        first = args[0] if args else None
        if isinstance(first, torch.Tensor) and not host(first):
            if name in SYNCING and id(first) not in self.losses and not in_torch_optim():
                self.caught.append(name)
            elif name == "__getitem__" and isinstance(args[1], torch.Tensor) and args[1].dtype == torch.bool:
                self.caught.append("boolean index")
        return func(*args, **kwargs)


def in_torch_optim() -> bool:
    """Whether torch's optimizers are running: they keep their step count on the host (not `capturable`), and
    reading it waits on no device (DiZO-FO's Adam over the ratios)."""
    frame = sys._getframe(2)
    while frame is not None:
        if frame.f_code.co_filename.startswith(OPTIM):
            return True
        frame = frame.f_back
    return False


OPTIM = os.path.dirname(torch.optim.__file__)


def host(t: torch.Tensor) -> bool:
    """A tensor the methods keep on the host by design: DiZO's float64 round scalars (one per projected layer)."""
    return t.dtype == torch.float64 and t.numel() <= 64


class Counted:
    """The model's loss closure with its forwards marked: ops inside them are not counted, and the tensors they
    return are the losses whose reading is allowed."""

    def __init__(self, model: Tiny, ops: Ops, syncs: Syncs) -> None:
        self.model, self.ops, self.syncs = model, ops, syncs

    @contextlib.contextmanager
    def _forward(self):
        self.ops.inside += 1
        try:
            yield
        finally:
            self.ops.inside -= 1

    def __call__(self) -> torch.Tensor:
        return self.copies(1)[0]

    def copies(self, n: int) -> torch.Tensor:
        with self._forward():
            out = self.model.copies(n)
        self.syncs.losses[id(out)] = out
        return out


def cuda_steps(method: str, monkeypatch, steps: int) -> tuple[list[dict], object]:
    """Per step of `method` on CUDA's path: its Triton launches, torch ops outside the forwards, what it read
    back to the host beside its losses, and whether it was a DiZO round; and the method."""
    launches = Launches(monkeypatch)
    model = Tiny()
    fields = METHODS.get(method).Hparams.__dataclass_fields__
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # Triton's interpreter is not thread-safe (on CUDA the engine uses no pool)
    try:
        with path.cuda_on_cpu():
            trainer = make(method, model.lm, **{f: v for f, v in CYCLES.items() if f in fields})
            out = []
            for step in range(steps):
                ops, syncs = Ops(), Syncs()
                loss_fn, launches.paused = Counted(model, ops, syncs), [ops, syncs]
                before = launches.count
                with torch.no_grad(), syncs, ops:
                    result = trainer.step(step, loss_fn, lambda: loss_fn)
                out.append({"launches": launches.count - before, "ops": ops.count, "syncs": syncs.caught,
                            "projected": "projection" in result.record, "forwards": result.forward_passes})
    finally:
        torch.set_num_threads(threads)
    return out, trainer


# Per step, per trained tensor (P of them; the adapters' with LoRA): Triton launches and torch ops outside the
# forwards (metadata ops such as `view` and `slice` included; on CUDA each other op is a kernel launch of its
# own), the most of any step, the first included (it measures one forward alone, then the fit is decided).
# What a step does that the bound pays for: MeZO, HiZOO: the probes' pair and the update, one launch each; a
# first step's lone forward one more. The random mask: its mask drawn for the probes and the update. LOZO,
# SubZero: the factors' draws on a redraw step. FZOO: a launch per probe in its update. ZO-Muon: its samples'
# factors and Newton-Schulz in torch ops. ZO-Bench's optimizers: their moments in torch ops. A DiZO round is
# its own row: the search's forwards, a handful of ops per projected layer.
BOUND = {  # method: (launches, ops) per trained tensor
    "mezo": (3, 3), "mezo-lora": (3, 3), "hizoo": (3, 5), "hizoo-lora": (3, 5), "dizo": (3, 3), "dizo-lora": (3, 3),
    "dizo-fo": (3, 3), "dizo-fo-lora": (3, 3), "forward-grad": (2, 12), "forward-grad-lora": (2, 13),
    "fzoo": (8, 3), "fzoo-lora": (8, 4), "mezo-random-mask": (6, 15), "mezo-random-mask-lora": (6, 15),
    "mezo-svrg": (5, 6), "mezo-svrg-lora": (5, 6), "lozo": (3, 9), "lozo-lora": (3, 11), "lozo-m": (3, 16),
    "subzero": (3, 11), "subzero-lora": (3, 14), "zo-muon": (9, 48), "zo-muon-lora": (9, 54),
    "zo-adam": (3, 19), "zo-adam-lora": (3, 19), "zo-sgd-sign": (3, 19), "zo-sgd-sign-lora": (3, 19),
    "zo-sgd-mmt": (3, 13), "zo-sgd-mmt-lora": (3, 13), "zo-sgd-cons": (5, 55), "zo-sgd-cons-lora": (5, 56),
}
ROUND_OPS = 15  # a DiZO round's torch ops per forward it takes (its ratios' lerp per projected layer); DiZO-FO's
# first-order search runs autograd's backward in torch ops, bounded by the model, not here
READS = {"forward-grad": 1, "forward-grad-lora": 1}  # besides the losses: its derivative, read with its loss


@pytest.mark.parametrize("method", ZO)
def test_a_step_on_the_cuda_path_keeps_to_its_launches_and_never_waits_on_the_device(method, monkeypatch):
    """Two steps (the first measures a forward alone; a DiZO round, a MeZO-SVRG anchor and a low-rank redraw
    fall among them): each within its stated launches and ops per trained tensor, no boolean indexing, and no
    read back to the host but the losses (and what `READS` names): a DiZO round's norms, read a layer at a
    time, were caught here."""
    assert method in BOUND, f"{method}: no stated bound (BOUND)"
    rows, trainer = cuda_steps(method, monkeypatch, steps=2)
    tensors = len(trainer.engine.params)
    for step, row in enumerate(rows):
        rounds = int(row["projected"])
        launches, ops = BOUND[method]
        assert row["launches"] <= launches * tensors, (step, row, tensors)
        if not rounds:
            assert row["ops"] <= ops * tensors, (step, row, tensors)
        elif not issubclass(METHODS.get(method), DiZOFO):
            assert row["ops"] <= ROUND_OPS * row["forwards"], (step, row)
        assert "boolean index" not in row["syncs"] and "nonzero" not in row["syncs"], (step, row["syncs"])
        assert len(row["syncs"]) <= READS.get(method, 0) + rounds, (step, row["syncs"])


def test_an_item_put_into_an_update_is_caught(monkeypatch):
    """The check above fails on purpose: MeZO's update reads a weight's norm back to the host."""
    from methods.mezo import MeZO

    descend = MeZO.descend

    def reading(self, step, record):
        self.engine.params[0].norm().item()
        descend(self, step, record)

    monkeypatch.setattr(MeZO, "descend", reading)
    rows, _ = cuda_steps("mezo", monkeypatch, steps=2)
    assert [row["syncs"] for row in rows] == [["item"], ["item"]]


def test_the_stacked_choice_is_decided_once_and_in_the_runs_record(monkeypatch):
    """The first step's lone forward is measured, the fit decided then, and the method's diagnostics (logged at
    each evaluation) say the probes ran stacked; on the CPU's path there is nothing to decide."""
    rows, trainer = cuda_steps("hizoo", monkeypatch, steps=2)
    assert trainer.engine.decided == {3: True} and trainer.diagnostics()["zo/stacked"] == 1.0
    assert "zo/stacked" not in make("hizoo", Tiny().lm).diagnostics()


def test_dizo_keeps_theta0_on_the_device_where_it_fits_decided_once_and_reported(monkeypatch):
    """`theta0=auto`: on the device when the projected weights' copy fits the free memory at the start, else in
    host memory (which every probe of a round then reads); `device` and `host` say where outright."""
    model = Tiny()
    with path.cuda_on_cpu():
        assert make("dizo", model.lm).diagnostics()["dizo/theta0_on_device"] == 1.0
        monkeypatch.setattr(path, "free_bytes", lambda device: 1000)  # q and v of Tiny: 1.5 KiB
        tight = make("dizo", model.lm)
        assert not tight.theta0_on_device and tight.diagnostics()["dizo/theta0_on_device"] == 0.0
        assert make("dizo", model.lm, theta0="device").theta0_on_device
    assert "dizo/theta0_on_device" not in make("dizo", model.lm).diagnostics()  # the CPU's path: one memory
