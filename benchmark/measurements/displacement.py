"""Does DiZO's ratio search search? One round of each projection rule from the same weights.

`python -m benchmark.measurements.displacement [--model M] [--task T] [--rules released relative]` runs two
scenarios on the same model, batches and z stream, one line per (scenario, rule):
- `mezo-N`: after N real MeZO steps from the pre-trained weights (ts = ||theta - theta0|| of order 1);
- `displaced-F`: the projected weights moved at random by F x their own norm (a harmful, large ts).
Each line gives ts, the share of ratios on a clip bound after the round, and the held-out (dev)
loss before and after it. A search whose ratios all sit on a bound only follows the sign of its
first estimate; one that lowers the held-out loss after a harmful displacement has found the way back.
"""
from __future__ import annotations

import argparse

import torch

from benchmark.core import names
from benchmark.core.settings import parse_set_args
from benchmark.loop import batch_indices, build_method, encoder_for
from benchmark.models import load_model, resolve_device
from benchmark.runner import build_run, sample
from benchmark.scoring import Batch, BatchLoss, classification_loss


def held_out_loss(model: torch.nn.Module, batches: list[Batch]) -> float:
    model.eval()
    with torch.no_grad():
        return sum(classification_loss(model, b).item() * len(b.gold) for b in batches) / sum(len(b.gold) for b in batches)


def one_round(trainer, step: int, batches: list[Batch], held: list[Batch]) -> dict[str, float]:
    """Project once on `batches` (in order) from the current weights, then walk the round back
    (`restore`: the method's own undo, to rounding)."""
    model = trainer.engine.model
    before, mark = held_out_loss(model, held), trainer.checkpoint()
    queue = iter(batches)
    _, diagnostics = trainer.project(step, lambda: BatchLoss(model, next(queue)))
    after = held_out_loss(model, held)
    trainer.restore(mark)
    return {"ts": diagnostics[names.DIZO_TS_MEAN], "at_bound": diagnostics[names.DIZO_RATIO_AT_BOUND],
            "before": before, "after": after}


def probe(args: argparse.Namespace) -> list[str]:
    """One DiZO per rule, built on the same pre-trained model (each keeps theta0); MeZO steps move the
    weights they share, then each rule projects once from them."""
    sets = {"lr": str(args.lr), "eps": "1e-3", "projection_interval": str(10**9), "num_dev": str(args.num_dev),
            "batch_size": str(args.batch_size), **args.set}
    configs = [build_run("dizo", args.task, {**sets, "projection_rule": rule}, model=args.model, seed=args.seed,
                         dtype="fp32") for rule in args.rules]
    cfg, hp = configs[0]
    device = resolve_device("auto")
    loaded = load_model(cfg.model, device, torch.float32 if device.type == "cpu" else torch.float16)
    loaded.model.eval()  # ZO forwards: no dropout
    _, _, splits = sample(cfg)
    encoder = encoder_for(cfg, loaded, device)
    order = batch_indices(len(splits.train), cfg.batch_size, cfg.seed)
    batches = [encoder.collate([splits.train[i] for i in next(order)]) for _ in range(hp.projection_iters)]
    held = [encoder.collate(splits.dev[i:i + 32]) for i in range(0, len(splits.dev), 32)]
    trainers = [build_method(c, h, loaded.model) for c, h in configs]
    pretrained = [p.detach().clone() for p in trainers[0].engine.params]
    lines = []

    def report(scenario: str, step: int) -> None:
        for rule, trainer in zip(args.rules, trainers):
            r = one_round(trainer, step, batches, held)
            lines.append(f"{scenario:14s} {rule:9s} ts {r['ts']:8.3f}  on a bound {r['at_bound']:5.0%}  "
                         f"held-out loss {r['before']:.4f} -> {r['after']:.4f}")
            print(lines[-1], flush=True)

    for step in range(args.mezo_steps):
        trainers[0].step(step, BatchLoss(loaded.model, batches[step % len(batches)]))
    report(f"mezo-{args.mezo_steps}", args.mezo_steps)
    gen = torch.Generator().manual_seed(cfg.seed)
    with torch.no_grad():
        for p, p0 in zip(trainers[0].engine.params, pretrained):
            p.copy_(p0)
        for name, p in loaded.model.named_parameters():
            if name in dict(trainers[0].layers):
                d = torch.randn(p.shape, generator=gen).to(p)
                p.add_(d * (args.displacement * p.norm() / d.norm()))
    report(f"displaced-{args.displacement:g}", args.mezo_steps + 1)
    return lines


def main(argv: list[str] | None = None) -> list[str]:
    parser = argparse.ArgumentParser(prog="python -m benchmark.measurements.displacement", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--task", default="rt-polarity")
    parser.add_argument("--rules", nargs="+", default=["released", "relative"], choices=["released", "relative", "appendix"])
    parser.add_argument("--mezo-steps", type=int, default=20)
    parser.add_argument("--lr", type=float, default=3e-5)
    parser.add_argument("--displacement", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-dev", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--set", nargs="*", default=[], help="DiZO settings, key=value (e.g. clip_range=0.1)")
    args = parser.parse_args(argv)
    args.set = parse_set_args(args.set)
    return probe(args)


if __name__ == "__main__":
    from benchmark.core.errors import BenchmarkError

    try:
        main()
    except BenchmarkError as exc:
        raise SystemExit(f"error: {exc}") from None
