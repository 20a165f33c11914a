"""LoRA through peft, and the `*-lora` twin of any method.

`with_lora(Base)` returns a subclass that injects adapters (r=8, alpha=16 on the query and value
projections by default, as in the paper) into the model in place and freezes the rest before the
base method sees it; the base then trains whatever `requires_grad` says, first-order or ZO alike.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from torch import nn

from benchmark.core.settings import param, positive
from methods.layers import find_modules, parse_roles, valid_roles


def add_lora(model: nn.Module, r: int, alpha: int, roles: str) -> None:
    from peft import LoraConfig, inject_adapter_in_model  # imported here: peft loads transformers (2 s), which
    # `benchmark list` and every registry lookup would otherwise pay

    targets = [name for name, _ in find_modules(model, parse_roles(roles))]
    inject_adapter_in_model(LoraConfig(r=r, lora_alpha=alpha, lora_dropout=0.0, target_modules=targets), model)
    for name, p in model.named_parameters():
        p.requires_grad_("lora_" in name)


LORA_FIELDS = [
    ("lora_r", int, param(8, "LoRA rank", positive, "> 0")),
    ("lora_alpha", int, param(16, "LoRA alpha (scale alpha/r)", positive, "> 0")),
    ("lora_roles", str, param("q,v", "projections that get adapters", valid_roles, "a comma list of q,k,v,o,dense")),
]


def hparams_with(base: type, extra: list[tuple[str, type, Any]], **defaults: Any) -> type:
    """`base`'s dataclass plus `extra` fields, with some defaults replaced (metadata kept)."""
    fields = []
    for f in dataclasses.fields(base):
        default = defaults.get(f.name, f.default)
        fields.append((f.name, f.type, dataclasses.field(default=default, metadata=f.metadata)))
    return dataclasses.make_dataclass(f"{base.__name__}LoRA", fields + extra)


def with_lora(base: type, toy_sets: dict[str, str], **defaults: Any) -> type:
    """The LoRA variant of `base`; `defaults` overrides base hyperparameters (the paper's Table 7), `toy_sets` some of
    the base's toy settings (the adapters of the tests' tiny model learn at other rates)."""

    class LoRAVariant(base):  # type: ignore[misc, valid-type]
        Hparams = hparams_with(base.Hparams, LORA_FIELDS, **defaults)
        toy = {**base.toy, **toy_sets}

        def __init__(self, hp: Any, model: nn.Module, *args: Any) -> None:
            add_lora(model, hp.lora_r, hp.lora_alpha, hp.lora_roles)
            super().__init__(hp, model, *args)

    LoRAVariant.__name__ = LoRAVariant.__qualname__ = f"{base.__name__}LoRA"
    LoRAVariant.__doc__ = f"{base.__name__} on LoRA adapters (peft) instead of the full weights."
    return LoRAVariant
