"""Full fine-tuning with AdamW: the first-order reference (dropout on)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from benchmark.core.settings import non_negative, param, positive
from methods.base import Declared, Fresh, LossFn, Schedule, StepResult, copy_back, decays, host_copy, trainable
from methods.lora import with_lora
from methods.registry import register_method


@dataclass
class FTHparams:
    lr: float = param(1e-5, "AdamW learning rate", positive, "> 0")
    weight_decay: float = param(0.0, "AdamW weight decay (not on biases or norm weights)", non_negative, ">= 0")


@register_method("ft")
class FT(Declared, first_order=True, trains=True, projects=False, replays=False):
    """Updates every parameter with AdamW through backprop (paper: batch 8, lr 1e-5 or 5e-5)."""

    Hparams = FTHparams
    toy = {"lr": "1e-3"}

    def __init__(self, hp: FTHparams, model: nn.Module, schedule: Schedule, seed: int) -> None:
        self.hp = hp
        self.schedule = schedule
        self.params = trainable(model)
        decay = decays(model)
        groups = [
            {"params": [p for n, p in self.params if n in decay], "weight_decay": hp.weight_decay},
            {"params": [p for n, p in self.params if n not in decay], "weight_decay": 0.0},
        ]
        self.optimizer = torch.optim.AdamW([g for g in groups if g["params"]], lr=hp.lr)

    def step(self, step: int, loss_fn: LossFn, fresh: Fresh | None = None) -> StepResult:
        for group in self.optimizer.param_groups:
            group["lr"] = self.hp.lr * self.schedule(step)
        self.optimizer.zero_grad(set_to_none=True)
        loss = loss_fn()
        loss.backward()
        self.optimizer.step()
        return StepResult(loss=loss.item(), forward_passes=self.forwards())

    def forwards(self) -> int:
        return 1

    def state_copies(self) -> float:
        return 3.0  # AdamW's two moments and the gradients

    def diagnostics(self) -> dict[str, float]:
        return {}

    def checkpoint(self) -> list[torch.Tensor]:
        """A host copy of the weights: FO already holds optimizer state several times their size."""
        return host_copy([p for _, p in self.params])

    def restore(self, checkpoint: list[torch.Tensor]) -> None:
        copy_back([p for _, p in self.params], checkpoint)

    def state_dict(self) -> dict[str, Any]:
        """The trained weights (LoRA: the adapters) and AdamW's state: what a resumed run continues from."""
        return {"params": self.checkpoint(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.restore(state["params"])
        self.optimizer.load_state_dict(state["optimizer"])


register_method("lora")(with_lora(FT, {"lr": "1e-2"}, lr=1e-4))
