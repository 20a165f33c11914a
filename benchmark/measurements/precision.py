"""Does bf16 learn as fp32 does on this CPU, and is it faster? The measurements behind `--dtype auto`.

`python -m benchmark.measurements.precision [--model M] [--task T] [--seeds 32]` scores one training batch three ways:
`fp32`; `bf16` (bf16 weights: perturbations and updates in bf16); `bf16-mixed` (fp32 weights and updates,
every matmul under `torch.autocast` in bf16). Per form: the median MeZO step and forward time, and, over
`--seeds` directions z, the projected gradient (loss+ - loss-) / 2 eps against fp32's on the same batch
and the same z (Pearson correlation, share of equal signs), and the share of an update's entries that
change the weights at all (lr * g * z below half a bf16 ulp of theta rounds away). Dev accuracy after the
demo's 100 steps is `benchmark run mezo rt-polarity ... --dtype bf16` (README).
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from benchmark.measurements.perf import one_batch
from benchmark.models import resolve_precision
from methods.mezo import MeZO, MeZOHparams
from methods.zo import mix

FORMS = ("fp32", "bf16", "bf16-mixed")
CPU = torch.device("cpu")


def measure(args: argparse.Namespace, form: str) -> dict:
    precision = resolve_precision(form, CPU)
    loss_fn = one_batch(args.model, args.task, args.batch_size, CPU, precision.weights)
    model = loss_fn.model.eval()
    trainer = MeZO(MeZOHparams(lr=args.lr, eps=args.eps), model, lambda s: 1.0, 0)
    engine = trainer.engine
    grads, moved = [], []
    with torch.no_grad(), precision.compute(CPU):
        for s in range(args.seeds):
            seed = mix(0, s)
            with engine.probes(seed, args.eps):
                plus, minus = loss_fn.copies(2).tolist()
            g = (plus - minus) / (2 * args.eps)
            grads.append(g)
            if s < 4:  # how much of an update survives rounding into the weights
                changed = total = 0
                for i, p in enumerate(engine.params):
                    z = engine.direction(seed, i)
                    changed += (p - args.lr * g * z != p).sum().item()
                    total += p.numel()
                moved.append(changed / total)
        times = {"forward": [], "step": []}
        for r in range(args.steps + 1):
            start = time.perf_counter()
            loss_fn()
            forward = time.perf_counter() - start
            start = time.perf_counter()
            trainer.step(10_000 + r, loss_fn)
            if r:
                times["forward"].append(forward)
                times["step"].append(time.perf_counter() - start)
    return {"grads": grads, "moved": statistics.mean(moved),
            "forward_s": statistics.median(times["forward"]), "step_s": statistics.median(times["step"])}


def agreement(a: list[float], b: list[float]) -> tuple[float, float]:
    x, y = torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)
    corr = torch.corrcoef(torch.stack([x, y]))[0, 1].item()
    return corr, (torch.sign(x) == torch.sign(y)).double().mean().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--task", default="rt-polarity")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seeds", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3, help="timed MeZO steps per form (after one warm-up)")
    parser.add_argument("--lr", type=float, default=3e-5, help="the demo's MeZO learning rate")
    parser.add_argument("--eps", type=float, default=1e-3)
    args = parser.parse_args()
    rows = {form: measure(args, form) for form in FORMS}
    base = rows["fp32"]
    print(f"{args.model} | {args.task} | batch {args.batch_size} | {args.seeds} directions | eps {args.eps} | "
          f"lr {args.lr} | threads {torch.get_num_threads()}")
    print("| form | forward s | MeZO step s | step vs fp32 | grad corr vs fp32 | same sign | update entries that move |")
    print("|---|---|---|---|---|---|---|")
    for form, r in rows.items():
        corr, sign = agreement(base["grads"], r["grads"])
        print(f"| {form} | {r['forward_s']:.3f} | {r['step_s']:.3f} | {base['step_s'] / r['step_s']:.2f}x | "
              f"{corr:.4f} | {sign:.2f} | {r['moved']:.3f} |")


if __name__ == "__main__":
    main()
