"""What several test modules share. A module of helpers, not of tests: no test module imports another.

- the CLI, as a user runs it (`bench`);
- the toy tasks, registered under `toy` and `toy-qa` so configs are built for the task they train on;
- the tiny models and a loop that drives a method the way the runner does;
- the registered methods, read from the registry (no list written by hand);
- task files (YAML over JSONL, CSV or Parquet rows) written into a test's folder.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import os
import socket
import subprocess
import sys

import torch
from torch import nn

from benchmark.core.settings import apply_overrides, validate
from benchmark.loop import batch_indices
from benchmark.models import LoadedModel, load_model
from benchmark.scoring import BatchLoss, Encoder, classification_loss
from methods.registry import METHODS
from tasks.base import Example, Pools, Sizes, Task, Template
from tasks.registry import register_task

CPU = torch.device("cpu")
BENCH = [sys.executable, "-m", "benchmark.cli"]


def bench(*args: str, env: dict | None = None, timeout: float = 900, **kw) -> subprocess.CompletedProcess:
    """`benchmark ARGS` in a child process, this process's environment plus `env`."""
    return subprocess.run([*BENCH, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, **kw)


def free_port() -> int:
    """A loopback port nothing listens on now (for a server a test starts)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rest(base: str, path: str, body: dict | None = None) -> dict:
    """A JSON request to a server a test started (GET, or POST with `body`)."""
    import urllib.request

    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"{}")


# ---- the registered methods --------------------------------------------------------------------

TRAINED = [name for name in METHODS.names() if METHODS.get(name).trains]
LORA = [name for name in TRAINED if "lora_r" in {f.name for f in dataclasses.fields(METHODS.get(name).Hparams)}]
# each method's toy settings (`toy` on its class: learning rates under which 150 steps (ZO) or 30 steps
# (first-order) visibly learn the toy rule on the tiny model); a method registered without them fails
# `test_every_trained_method_has_toy_settings`
SETTINGS = {name: METHODS.get(name).toy for name in TRAINED}

# The paper's methods (Table 4's rows) hold the engine's shared paths, each in its own cases. Every other method
# has a budget in the suite: its base at most 9 parametrised cases, its LoRA twin 5, each a toy run of at most
# 20 steps but the learning test's 150 (`test_a_method_outside_the_papers_keeps_to_its_share_of_the_suite`).
PAPERS = ("ft", "lora", "mezo", "mezo-lora", "hizoo", "hizoo-lora", "dizo", "dizo-lora", "dizo-fo", "dizo-fo-lora")
BUDGET = {"base": 9, "twin": 5}
# what the learning, resume and masked-LM cases run: every base method and the paper's twins; other twins run
# their base's code on the adapters, held by the contract, LoRA-only and golden tests
HELD = [m for m in TRAINED if m not in LORA or m in PAPERS]


def make(method: str, model: nn.Module, seed: int = 0, **sets: str):
    """The registered method on `model`, with its toy settings and `sets`, validated as a run would."""
    cls = METHODS.get(method)
    hp = cls.Hparams()
    apply_overrides([hp], {**SETTINGS.get(method, {}), **sets})
    validate(hp)
    torch.manual_seed(seed)  # LoRA's A is initialised from the global RNG, as the runner seeds it
    return cls(hp, model, lambda step: 1.0, seed)


# ---- the toy tasks -----------------------------------------------------------------------------

WORDS = ["good", "bad", "fine", "awful", "nice", "poor"]


def toy_examples(n: int, offset: int = 0) -> list[Example]:
    """Sentiment-like examples with one-token candidates and a learnable rule (which word it is)."""
    return [
        Example(prompt=f"review {i}: {WORDS[i % 6]} movie. It was", candidates=(" terrible", " great"),
                gold=int(WORDS[i % 6] in ("good", "fine", "nice")))
        for i in range(offset, offset + n)
    ]


def toy_render(row: dict) -> Example:
    return toy_examples(1, row["i"])[0]


def toy_task(n_train: int = 200, n_heldout: int = 100) -> Task:
    """The toy rule as a task; one render serves both kinds (a masked LM reads the mask after the prompt)."""
    rows = [{"i": i} for i in range(n_train + n_heldout)]
    return Task(
        name="toy", description="synthetic sentiment rule",
        load_pools=lambda: Pools(train=rows[:n_train], heldout=rows[n_train:]),
        templates={"toy": Template("causal", toy_render, "tests"), "toy-masked": Template("masked", toy_render, "tests")},
        sizes=Sizes(train=32, dev=16, test=16),
    )


def qa_render(row: dict) -> Example:
    i = row["i"]
    return Example(f"Passage: the code is {i % 7}.\nQuestion: what is the code?\nAnswer:", (f" {i % 7}\n",), 0,
                   answers=(str(i % 7),))


TOY_QA = Task(name="toy-qa", description="synthetic extractive QA",
              load_pools=lambda: Pools(train=[{"i": i} for i in range(24)], heldout=[{"i": i} for i in range(24, 40)]),
              templates={"qa": Template("causal", qa_render, "tests")}, metric="f1", sizes=Sizes(16, 8, 8))
register_task("toy")(toy_task())
register_task("toy-qa")(TOY_QA)


# ---- the tiny models and the loop --------------------------------------------------------------

def tiny(arch: str = "llama") -> LoadedModel:
    return load_model(f"tiny-random-{arch}", CPU, torch.float32)


def params_of(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


class Loop:
    """Drives a method over the toy examples the way the runner does."""

    def __init__(self, loaded: LoadedModel, n: int = 32, batch_size: int = 8, seed: int = 0):
        self.loaded = loaded
        self.examples = toy_examples(n)
        device = next(loaded.model.parameters()).device  # the gpu tests' models live on CUDA
        self.encoder = Encoder(loaded.tokenizer, 128, device, masked=loaded.kind == "masked")
        self.batches = batch_indices(n, batch_size, seed)

    def loss_fn(self):
        batch = self.encoder.collate([self.examples[i] for i in next(self.batches)])
        return BatchLoss(self.loaded.model, batch)

    def run(self, trainer, steps: int, start: int = 0) -> list[float]:
        losses = []
        for step in range(start, start + steps):
            self.loaded.model.train(trainer.first_order)
            losses.append(trainer.step(step, self.loss_fn(), self.loss_fn).loss)
        return losses

    def mean_loss(self) -> float:
        self.loaded.model.eval()
        with torch.no_grad():
            return classification_loss(self.loaded.model, self.encoder.collate(self.examples)).item()


ROWS = [{"text": f"item {i} is {'fine' if i % 2 else 'broken'}", "label": i % 2, "mood": ["sad", "glad"][i % 2],
         "options": ["no", "yes"], "answer": f"{i % 5}"} for i in range(40)]


def write_rows(path, rows, fmt):
    if fmt == "json":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif fmt == "csv":
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=[k for k in rows[0] if k != "options"])
            writer.writeheader()
            writer.writerows([{k: v for k, v in r.items() if k != "options"} for r in rows])
    else:
        import pandas as pd

        pd.DataFrame(rows).to_parquet(path)


def task_file(folder, fmt="json", rows=ROWS, test_rows=None, name="toy-file", **fields) -> str:
    """A task file in `folder` over `rows` (train) and `test_rows` (test; default the same), in `fmt`."""
    ext = {"json": "jsonl", "csv": "csv", "parquet": "parquet"}[fmt]
    write_rows(folder / f"train.{ext}", rows, fmt)
    write_rows(folder / f"test.{ext}", test_rows if test_rows is not None else rows, fmt)
    spec = {"task": name, "dataset_path": fmt, "data_files": {"train": f"train.{ext}", "test": f"test.{ext}"},
            "doc_to_text": {"causal": "Text: {text}\nVerdict:", "masked": "Text: {text} Verdict: {mask}."},
            "doc_to_choice": ["bad", "good"], "doc_to_target": "label", "sizes": {"train": 20, "dev": 10, "test": 10},
            **fields}
    path = folder / "task.yaml"
    import yaml

    path.write_text(yaml.safe_dump({k: v for k, v in spec.items() if v is not None}))
    return str(path)
