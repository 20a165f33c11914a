"""The paper's Table 10 on a GPU: every method's step time, forwards and peak memory on a model built from
OPT-2.7B's config with random weights (fp16, as the paper's runs), on a synthetic batch of 16 prompts of 64
tokens scored at the last position, each method on a freshly built model. Also what z costs on the GPU per
generator (`benchmark.measurements.perf_directions`) and the Triton kernel's z against the CPU kernel's on a million
values. Needs torch with CUDA, transformers, peft, triton and numba only (none of the harness's data, MLflow
or Optuna), so it runs on a bare GPU machine: `python -m benchmark.measurements.table10_gpu --out results.json`.
Timing: nanoGPT's bench.py discipline (warm-up, synchronise, median of the timed steps)."""
from __future__ import annotations

import argparse
import json
import statistics

import numpy as np
import torch
import torch.nn.functional as F

from benchmark.core.settings import apply_overrides, validate
from benchmark.measure import Stopwatch, device_name
from benchmark.measurements import perf_directions
from methods.mezo_reference import ReferenceMeZO
from methods.registry import METHODS
from methods.zo import cpu, gpu
from methods.zo.generators import mix

OPT_2_7B = dict(hidden_size=2560, ffn_dim=10240, num_hidden_layers=32, num_attention_heads=32, vocab_size=50272,
                max_position_embeddings=2048, word_embed_proj_dim=2560)
ROWS = [("mezo-reference", {}), ("mezo", {}), ("mezo", {"generator": "torch-normal"}), ("hizoo", {}), ("dizo", {}),
        ("ft", {}), ("lora", {}), ("mezo-lora", {}), ("hizoo-lora", {}), ("dizo-lora", {})]
WARMUP = 2


class SyntheticLoss:
    """Cross-entropy of a next token at the last position of each prompt (a classification prompt's loss);
    `full`: the LM head over every position, as MeZO's released scoring computes it."""

    def __init__(self, model: torch.nn.Module, ids: torch.Tensor, target: torch.Tensor, full: bool = False) -> None:
        self.model, self.ids, self.target, self.full = model, ids, target, full

    def __call__(self) -> torch.Tensor:
        return self.copies(1)[0]

    def copies(self, n: int) -> torch.Tensor:
        ids = self.ids.repeat(n, 1)
        out = self.model(input_ids=ids, use_cache=False, **({} if self.full else {"logits_to_keep": 1}))
        logits = out.logits[:, -1].float()
        return F.cross_entropy(logits, self.target.repeat(n), reduction="none").view(n, -1).mean(1)


def build(device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    from transformers import OPTConfig, OPTForCausalLM

    torch.manual_seed(0)
    with torch.device(device):
        return OPTForCausalLM._from_config(OPTConfig(**OPT_2_7B), dtype=dtype)


def median_s(fn, device: torch.device, steps: int) -> float:
    watch, times = Stopwatch(device), []
    for i in range(WARMUP + steps):
        with watch:
            fn(i)
        if i >= WARMUP:
            times.append(watch.last_s)
    return statistics.median(times)


def row(method: str, sets: dict, device: torch.device, dtype: torch.dtype, steps: int, batch: int) -> dict:
    model = build(device, dtype)
    gen = torch.Generator(device=device).manual_seed(1)
    ids = torch.randint(2, OPT_2_7B["vocab_size"], (batch, 64), device=device, generator=gen)
    target = torch.randint(2, OPT_2_7B["vocab_size"], (batch,), device=device, generator=gen)
    loss_fn = SyntheticLoss(model, ids, target, full=method == "mezo-reference")
    model.eval()
    torch.cuda.reset_peak_memory_stats(device)
    with torch.no_grad():
        forward_s = median_s(lambda i: loss_fn(), device, steps)
    inference_gb = torch.cuda.max_memory_allocated(device) / 2**30
    cls = ReferenceMeZO if method == "mezo-reference" else METHODS.get(method)
    hp = cls.Hparams()
    apply_overrides([hp], sets)
    validate(hp)
    trainer = cls(hp, model, lambda s: 1.0, 0)
    model.train(trainer.first_order)
    torch.cuda.reset_peak_memory_stats(device)
    passes = []
    step_s = median_s(lambda i: passes.append(trainer.step(i, loss_fn, lambda: loss_fn).forward_passes), device, steps)
    out = {"method": method, **sets, "step_s": step_s, "forward_s": forward_s, "forward_passes": passes[-1],
           "step_over_forwards": step_s / (passes[-1] * forward_s), "steps_per_s": 1 / step_s,
           "peak_gb": torch.cuda.max_memory_allocated(device) / 2**30, "inference_peak_gb": inference_gb}
    if trainer.projects:
        projection_s = median_s(lambda i: trainer.project(i, lambda: loss_fn), device, 2)
        out["projection_over_its_forwards"] = projection_s / (trainer.projection_passes() * forward_s)
        out["steps_per_s_amortised"] = 1 / (step_s + projection_s / hp.projection_interval)
    torch.cuda.empty_cache()
    return out


def profile(device: torch.device, batch: int) -> None:
    """Where MeZO's step goes on the GPU: torch's profiler over two steps after three, top ops by host time."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as profiler

    model = build(device, torch.float16).eval()
    gen = torch.Generator(device=device).manual_seed(1)
    ids = torch.randint(2, OPT_2_7B["vocab_size"], (batch, 64), device=device, generator=gen)
    loss_fn = SyntheticLoss(model, ids, ids[:, -1])
    trainer = METHODS.get("mezo")(METHODS.get("mezo").Hparams(), model, lambda s: 1.0, 0)
    for i in range(3):
        trainer.step(i, loss_fn)
    torch.cuda.synchronize(device)
    with profiler(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for i in range(3, 5):
            trainer.step(i, loss_fn)
        torch.cuda.synchronize(device)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=14), flush=True)
    print(prof.key_averages().table(sort_by="self_device_time_total", row_limit=8), flush=True)


def kernels_agree(device: torch.device) -> dict:
    """Triton's z on the GPU against the CPU kernel's on a million values, from an unaligned counter."""
    n, key, start = 1 << 20, mix(2026, 7), 3
    on_gpu = torch.empty(n, device=device)
    gpu.fill(on_gpu, key, start)
    on_cpu = np.empty(n, np.float32)
    cpu.fill(on_cpu, key, start)
    return {"values": n, "max_abs_diff": float(np.abs(on_gpu.cpu().numpy() - on_cpu).max())}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--out", default="table10_gpu.json")
    parser.add_argument("--profile", action="store_true", help="also where MeZO's step goes (torch's profiler)")
    args = parser.parse_args()
    device = torch.device("cuda")
    if args.profile:
        profile(device, args.batch)
    results = {"device": device_name(device), "torch": torch.__version__, "kernels": kernels_agree(device)}
    print(json.dumps(results), flush=True)
    results["directions"] = perf_directions.main(device, numel=1 << 28)
    results["rows"] = []
    for method, sets in ROWS:
        try:
            r = row(method, sets, device, torch.float16, args.steps, args.batch)
        except Exception as exc:  # one method's failure is recorded, the others still measured
            r = {"method": method, **sets, "error": f"{type(exc).__name__}: {exc}"[:300]}
            torch.cuda.empty_cache()
        results["rows"].append(r)
        print(json.dumps(r), flush=True)
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
