"""The paper's Table 10 on a GPU: every registered trained method's step time, forwards and peak memory on a model
built from OPT-2.7B's config with random weights (fp16, as the paper's runs), on a synthetic batch of 16 prompts
of 64 tokens scored at the last position, each method on a freshly built model, MeZO's released engine
(`mezo-reference`) first, in the same run. Also the Triton kernel's z against the CPU kernel's on a million values
and what z costs on the GPU per generator (`benchmark.measurements.perf_directions`). Needs torch with CUDA,
transformers, peft, triton and numba only (none of the harness's data, MLflow or Optuna), so it runs on a bare GPU
machine. Each row joins `reports/results/perf/table10_gpu_DEVICE_DATE.json` as it is measured (a cut-off run
keeps what it measured); `--budget-s` stops starting rows once spent, naming those not reached. The end prints
the table as ratios (step over its forwards, throughput against MeZO's, MeZO against the released engine, peak
against MeZO's and inference's), comparable across devices and torch versions, unlike seconds.
`--device cpu --config tiny` is the dry run the suite makes (tests/test_cli.py).
Timing: nanoGPT's bench.py discipline (warm-up, synchronise, median of the timed steps)."""
from __future__ import annotations

import argparse
import datetime
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from benchmark.core.settings import validate
from benchmark.measure import Stopwatch, hardware_name
from benchmark.measurements import perf_directions
from methods.mezo_reference import ReferenceMeZO
from methods.registry import METHODS
from methods.zo import cpu, gpu
from methods.zo.generators import mix
from methods.zo.method import ZOMethod

OUT = Path(__file__).resolve().parents[2] / "reports" / "results" / "perf"
OPT_2_7B = dict(hidden_size=2560, ffn_dim=10240, num_hidden_layers=32, num_attention_heads=32, vocab_size=50272,
                max_position_embeddings=2048, word_embed_proj_dim=2560)
CONFIGS = {"opt-2.7b": OPT_2_7B, "tiny": dict(hidden_size=32, ffn_dim=64, num_hidden_layers=2, num_attention_heads=4,
                                              vocab_size=512, max_position_embeddings=128, word_embed_proj_dim=32)}
REFERENCE = "mezo-reference"


def methods() -> list[str]:
    """MeZO's released engine, then every registered method that trains, MeZO first (the ratios' base)."""
    trained = [m for m in METHODS.names() if METHODS.get(m).trains and m != "mezo"]
    return [REFERENCE, "mezo", *trained]


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


def build(config: dict, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    from transformers import OPTConfig, OPTForCausalLM

    torch.manual_seed(0)
    with torch.device(device):
        return OPTForCausalLM._from_config(OPTConfig(**config), dtype=dtype)


def peak_gb(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def median_s(fn, device: torch.device, steps: int) -> float:
    watch, times = Stopwatch(device), []
    for i in range(WARMUP + steps):
        with watch:
            fn(i)
        if i >= WARMUP:
            times.append(watch.last_s)
    return statistics.median(times)


def row(method: str, config: dict, device: torch.device, dtype: torch.dtype, steps: int, batch: int) -> dict:
    model = build(config, device, dtype)
    gen = torch.Generator(device=device).manual_seed(1)
    ids = torch.randint(2, config["vocab_size"], (batch, 64), device=device, generator=gen)
    target = torch.randint(2, config["vocab_size"], (batch,), device=device, generator=gen)
    loss_fn = SyntheticLoss(model, ids, target, full=method == REFERENCE)
    model.eval()
    reset_peak(device)
    with torch.no_grad():
        forward_s = median_s(lambda i: loss_fn(), device, steps)
    inference_gb = peak_gb(device)
    cls = ReferenceMeZO if method == REFERENCE else METHODS.get(method)
    hp = cls.Hparams()
    validate(hp)
    trainer = cls(hp, model, lambda s: 1.0, 0)
    model.train(trainer.first_order)
    reset_peak(device)
    passes = []
    step_s = median_s(lambda i: passes.append(trainer.step(i, loss_fn, lambda: loss_fn).forward_passes), device, steps)
    forwards = statistics.mean(passes[WARMUP:])  # a method with a cycle (an anchor, a redraw): its mean
    out = {"method": method, "step_s": step_s, "forward_s": forward_s, "forward_passes": forwards,
           "step_over_forwards": step_s / (forwards * forward_s), "steps_per_s": 1 / step_s,
           "peak_gb": peak_gb(device), "inference_peak_gb": inference_gb,
           "stacked": trainer.engine.decided if isinstance(trainer, ZOMethod) else None}
    if trainer.projects:
        projection_s = median_s(lambda i: trainer.project(i, lambda: loss_fn), device, 2)
        out["projection_over_its_forwards"] = projection_s / (trainer.projection_passes() * forward_s)
        out["steps_per_s_amortised"] = 1 / (step_s + projection_s / hp.projection_interval)
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return out


def ratios(rows: list[dict]) -> list[dict]:
    """Each measured row's ratios: its step over its forwards, its throughput against MeZO's (amortised over
    DiZO's rounds), MeZO against the released engine, its peak against MeZO's and against inference's."""
    by = {r["method"]: r for r in rows if "step_s" in r}
    mezo, ref = by.get("mezo"), by.get(REFERENCE)
    out = []
    for r in rows:
        if "step_s" not in r:
            out.append({"method": r["method"], "error": r.get("error", "not reached")})
            continue
        rate = r.get("steps_per_s_amortised", r["steps_per_s"])
        out.append({"method": r["method"], "step_over_forwards": r["step_over_forwards"],
                    "throughput_vs_mezo": rate / mezo["steps_per_s"] if mezo else None,
                    "vs_reference": ref["step_s"] / r["step_s"] if ref else None,
                    "peak_vs_mezo": r["peak_gb"] / mezo["peak_gb"] if mezo and r["peak_gb"] else None,
                    "peak_vs_inference": r["peak_gb"] / r["inference_peak_gb"] if r["peak_gb"] else None,
                    "projection_over_its_forwards": r.get("projection_over_its_forwards")})
    return out


def table(results: dict) -> str:
    cell = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
    lines = [f"Table 10 on {results['device']} | torch {results['torch']} | {results['config']}, "
             f"{results['dtype']}, batch {results['batch']} x 64 | median of {results['steps']} steps",
             "| method | step / forwards | throughput vs MeZO | vs released | peak vs MeZO | peak vs inference "
             "| round / its forwards |", "|---|---|---|---|---|---|---|"]
    for r in ratios(results["rows"]):
        if "error" in r:
            lines.append(f"| {r['method']} | {r['error']} ||||||")
            continue
        lines.append(f"| {r['method']} | " + " | ".join(cell(r[k]) for k in (
            "step_over_forwards", "throughput_vs_mezo", "vs_reference", "peak_vs_mezo", "peak_vs_inference",
            "projection_over_its_forwards")) + " |")
    return "\n".join(lines)


def profile(device: torch.device, batch: int) -> None:
    """Where MeZO's step goes on the GPU: torch's profiler over two steps after three, top ops by host time."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as profiler

    model = build(OPT_2_7B, device, torch.float16).eval()
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


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--config", default="opt-2.7b", choices=list(CONFIGS))
    parser.add_argument("--methods", nargs="+", default=None, help="rows to measure (default: all, the released first)")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--budget-s", type=float, default=None, help="start no row once this many seconds are spent")
    parser.add_argument("--out", default=None, help="the record (default reports/results/perf/table10_gpu_DEVICE_DATE.json)")
    parser.add_argument("--profile", action="store_true", help="also where MeZO's step goes (torch's profiler)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("table10_gpu: no CUDA device here (--device cpu --config tiny is the dry run)")
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    chosen = args.methods or methods()
    unknown = [m for m in chosen if m != REFERENCE and m not in METHODS.names()]
    if unknown:
        raise SystemExit(f"table10_gpu: unknown methods {unknown}")
    slug = "".join(c if c.isalnum() else "-" for c in hardware_name(device)).strip("-").lower()[:40]
    out = Path(args.out) if args.out else OUT / f"table10_gpu_{slug}_{datetime.date.today().isoformat()}.json"
    if args.profile and device.type == "cuda":
        profile(device, args.batch)
    results = {"device": hardware_name(device), "torch": torch.__version__, "config": args.config,
               "dtype": str(dtype).removeprefix("torch."), "batch": args.batch, "steps": args.steps,
               "command": "python -m benchmark.measurements.table10_gpu " + " ".join(argv or []), "rows": []}
    if device.type == "cuda":
        results["kernels"] = kernels_agree(device)
        results["directions"] = perf_directions.main(device, numel=1 << 28)
    start = time.perf_counter()
    for method in chosen:
        if args.budget_s is not None and time.perf_counter() - start > args.budget_s:
            r = {"method": method, "error": "not reached (--budget-s)"}
        else:
            try:
                r = row(method, CONFIGS[args.config], device, dtype, args.steps, args.batch)
            except Exception as exc:  # one method's failure is recorded, the others still measured
                r = {"method": method, "error": f"{type(exc).__name__}: {exc}"[:300]}
                if device.type == "cuda":
                    torch.cuda.empty_cache()
        results["rows"].append(r)
        print(json.dumps(r), flush=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=1) + "\n")
    print(table(results), flush=True)
    print(f"wrote {out}")
    return results


if __name__ == "__main__":
    main()
