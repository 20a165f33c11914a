"""`benchmark` command line. Heavy imports (torch, transformers) happen inside the commands that
need them, so `benchmark list` and `benchmark report` start fast."""
from __future__ import annotations

import argparse
import sys

from benchmark.errors import BenchmarkError


def cmd_run(args: argparse.Namespace) -> None:
    from benchmark.config import parse_set_args
    from benchmark.runner import build_run, run

    cfg, hp = build_run(args.method, args.task, parse_set_args(args.set), model=args.model, steps=args.steps,
                        seed=args.seed, device=args.device, dtype=args.dtype, experiment=args.experiment)
    r = run(cfg, hp, progress=not args.quiet)
    print(f"{cfg.method} {cfg.task} {cfg.model} seed={cfg.seed}: dev {r.dev_best:.4f} (step {r.best_step}) "
          f"test {r.test:.4f} | {r.steps_per_s:.2f} steps/s | peak {r.peak_memory_gb:.2f} GB | "
          f"{r.forward_passes} forwards | run {r.run_id}")


def cmd_list(args: argparse.Namespace) -> None:
    from benchmark.registry import METHODS, MODELS, TASKS

    registry = {"methods": METHODS, "tasks": TASKS, "models": MODELS}[args.what]
    for name in registry.names():
        entry = registry.get(name)
        doc = getattr(entry, "description", None) or (entry.__doc__ or "").strip().splitlines()[0:1]
        print(f"{name:20s} {doc if isinstance(doc, str) else ''.join(doc)}")


def cmd_show_task(args: argparse.Namespace) -> None:
    from tasks.show import show_task

    if args.model is not None:
        from benchmark.models import check_model_name, model_kind

        check_model_name(args.model)
        args.kind = model_kind(args.model)
    print(show_task(args.task, args.n, args.template, args.kind, args.split, args.seed))


def cmd_report(args: argparse.Namespace) -> None:
    from reports.summary import report

    print(report(args.experiment, args.out))


def cmd_perf(args: argparse.Namespace) -> None:
    from benchmark.perf import DEFAULT_METHODS, main

    args.methods = args.methods or DEFAULT_METHODS
    main(args)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="benchmark", description="Memory-efficient LLM fine-tuning benchmark")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="one training run, logged to MLflow")
    r.add_argument("method")
    r.add_argument("task")
    r.add_argument("--model", default=None, help="registered name, hub id or local path (default smollm2-135m)")
    r.add_argument("--steps", type=int, default=None)
    r.add_argument("--seed", type=int, default=None)
    r.add_argument("--device", default=None, help="auto|cpu|cuda")
    r.add_argument("--dtype", default=None, help="auto|fp32|fp16|bf16")
    r.add_argument("--experiment", default=None, help="MLflow experiment (default adhoc)")
    r.add_argument("--set", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                   help="any run setting or hyperparameter; repeat the flag or list several")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.set_defaults(func=cmd_run)

    ls = sub.add_parser("list", help="registered methods, tasks or models")
    ls.add_argument("what", choices=["methods", "tasks", "models"])
    ls.set_defaults(func=cmd_list)

    show = sub.add_parser("show-task", help="rendered prompts, candidates and gold of a task")
    show.add_argument("task")
    show.add_argument("--n", type=int, default=3, help="examples to show")
    show.add_argument("--template", default=None, help="template name (default: the kind's default)")
    show.add_argument("--kind", choices=["causal", "masked"], default="causal", help="model kind to render for")
    show.add_argument("--model", default=None, help="take the kind from this model instead")
    show.add_argument("--split", default="test", help="train|dev|test")
    show.add_argument("--seed", type=int, default=0)
    show.set_defaults(func=cmd_show_task)

    rep = sub.add_parser("report", help="tables from MLflow")
    rep.add_argument("experiment")
    rep.add_argument("--out", default="runs/reports")
    rep.set_defaults(func=cmd_report)

    perf = sub.add_parser("perf", help="step time, forward time and memory per method")
    perf.add_argument("--model", default="smollm2-135m")
    perf.add_argument("--task", default="rt-polarity")
    perf.add_argument("--methods", nargs="+", default=None, help="default: every method and mezo-reference")
    perf.add_argument("--batch-size", type=int, default=16)
    perf.add_argument("--steps", type=int, default=10, help="timed steps per method (after warm-up)")
    perf.add_argument("--device", default="auto")
    perf.add_argument("--dtype", default="auto")
    perf.add_argument("--json", action="store_true")
    perf.set_defaults(func=cmd_perf)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        args.func(args)
    except BenchmarkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
