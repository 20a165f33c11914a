"""Attention/MLP projections by role, whatever the architecture calls them.

DiZO projects and LoRA adapts "the query and value projections"; OPT names them q_proj/v_proj,
Llama the same, RoBERTa query/value. Roles map onto module-name suffixes here, once.
"""
from __future__ import annotations

from torch import nn

from benchmark.core.errors import BenchmarkError

ROLES: dict[str, tuple[str, ...]] = {
    "q": ("q_proj", "attention.self.query"),
    "k": ("k_proj", "attention.self.key"),
    "v": ("v_proj", "attention.self.value"),
    "o": ("self_attn.out_proj", "self_attn.o_proj", "attention.output.dense"),
    "dense": ("fc1", "fc2", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj", "intermediate.dense",
              "layer.*.output.dense"),
}


def _split(text: str) -> tuple[str, ...]:
    return tuple(r.strip() for r in text.split(",") if r.strip())


def valid_roles(text: str) -> bool:
    """Field check for role lists, so a bad list fails before any model is loaded."""
    roles = _split(text)
    return bool(roles) and all(r in ROLES for r in roles)


def parse_roles(text: str) -> tuple[str, ...]:
    """"q,v" -> ("q", "v"); an unknown role is a user error."""
    if not valid_roles(text):
        raise BenchmarkError(f"roles {text!r}: must be a comma list of {', '.join(ROLES)}")
    return _split(text)


def _matches(name: str, suffix: str) -> bool:
    if "*" in suffix:  # "layer.*.output.dense": RoBERTa's FFN output, not attention.output.dense
        head, tail = suffix.split(".*.")
        parts = name.split(".")
        return name.endswith("." + tail) and len(parts) >= 4 and parts[-4] == head and parts[-3].isdigit()
    return name == suffix or name.endswith("." + suffix)


def find_modules(model: nn.Module, roles: tuple[str, ...]) -> list[tuple[str, nn.Module]]:
    """Modules playing the given roles, in model order (a Linear, or peft's LoRA wrapper of one)."""
    found = [
        (name, module) for name, module in model.named_modules()
        if any(_matches(name, s) for r in roles for s in ROLES[r])
    ]
    if not found:
        raise BenchmarkError(f"no {'/'.join(roles)} projections found in {type(model).__name__}; extend methods/layers.py")
    return found


def role_weights(model: nn.Module, roles: tuple[str, ...]) -> list[tuple[str, nn.Parameter]]:
    """Trainable weight matrices inside the role modules: the Linear's own weight, or with LoRA
    the adapter's A and B (the frozen base weight is not trainable, so it is not listed)."""
    return [
        (f"{name}.{pname}", p)
        for name, module in find_modules(model, roles)
        for pname, p in module.named_parameters()
        if p.requires_grad and pname.endswith("weight")
    ]
