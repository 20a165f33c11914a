"""The tested weights on disk, the way the ecosystem loads them back.

A full model: `save_pretrained` layout (config, safetensors, tokenizer), for `from_pretrained`. A model
with LoRA adapters: the adapters alone the peft way (`adapter_config.json` + `adapter_model.safetensors`,
keys as `PeftModel.save_pretrained` writes them), for `PeftModel.from_pretrained(base, DIR)`.
"""
from __future__ import annotations

from pathlib import Path

from benchmark.models import LoadedModel

ADAPTER = "default"  # the adapter name `inject_adapter_in_model` gives (methods/lora.py)
PEFT_PREFIX = "base_model.model."  # where PeftModel puts the wrapped model's keys


def save_weights(loaded: LoadedModel, out: Path) -> Path:
    from peft.utils import get_peft_model_state_dict
    from safetensors.torch import save_file

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model = loaded.model
    configs = getattr(model, "peft_config", None)
    if configs:
        state = get_peft_model_state_dict(model, adapter_name=ADAPTER)
        save_file({PEFT_PREFIX + k: v.detach().cpu().contiguous() for k, v in state.items()},
                  out / "adapter_model.safetensors", metadata={"format": "pt"})
        config = configs[ADAPTER]
        config.base_model_name_or_path = loaded.name
        config.save_pretrained(out)
    else:
        model.save_pretrained(out)
        loaded.tokenizer.save_pretrained(out)
    return out
