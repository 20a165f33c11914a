"""`benchmark` command line: the one module that sees every layer. Modules that load torch (the runner,
models, studies' workers, perf) or pandas (reports) are imported inside the commands that need them, so
`benchmark list`, `report` and an error in the arguments answer in well under a second."""
from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from pathlib import Path

from benchmark.core.errors import BenchmarkError
from benchmark.core.settings import parse_set_args
from benchmark.doctor import doctor
from benchmark.experiments.registry import EXPERIMENTS
from benchmark.interrupt import Interrupt, Interrupted
from benchmark.study.storage import default_storage_url, joined_cells, open_storage, preset_studies
from methods.registry import METHODS
from tasks.registry import TASKS
from tasks.show import show_task

REPORTS = "runs/reports"  # where `benchmark report` writes unless --out says otherwise


def cmd_run(args: argparse.Namespace) -> None:
    from benchmark.runner import build_run, run

    cfg, hp = build_run(args.method, args.task, parse_set_args(args.set), model=args.model, steps=args.steps,
                        seed=args.seed, device=args.device, dtype=args.dtype, experiment=args.experiment)
    with Interrupt() as interrupt:  # Ctrl-C ends the run between steps: KILLED, reason interrupted
        r = run(cfg, hp, progress=not (args.quiet or args.json), on_metrics=lambda metrics, step: interrupt.check(),
                resume=args.resume, save_to=args.save)
    if args.json:
        print(json.dumps({"method": cfg.method, "task": cfg.task, "model": cfg.model, "seed": cfg.seed,
                          "run_id": r.run_id, **r.summary_metrics()}))
        return
    print(f"{cfg.method} {cfg.task} {cfg.model} seed={cfg.seed}: dev {r.dev_best:.4f} (step {r.best_step}) "
          f"test {r.test:.4f} | {r.steps_per_s:.2f} steps/s | peak {r.peak_memory_gb:.2f} GB | "
          f"{r.forward_passes} forwards | run {r.run_id}")


def cmd_replay(args: argparse.Namespace) -> None:
    from benchmark.replay import replay

    r = replay(args.source, args.out)
    head, end = r.log.header, r.log.end
    if args.json:
        print(json.dumps({"method": head["method"], "model": head["model"], "steps": r.steps, "seconds": r.seconds,
                          "best_step": end["best_step"], "test": r.test, "logged_test": end["test"],
                          "out": str(r.out) if r.out else None}))
    else:
        print(f"replayed {r.steps} steps of {head['method']} {head['config']['task']} {head['model']} "
          f"({head['dtype']}, {head['device']}) in {r.seconds:.1f} s; best step {end['best_step']}: test {r.test:.4f}, "
          f"logged {end['test']:.4f}{'' if r.test == end['test'] else ' (DIFFERENT)'}"
              f"{f'; weights in {r.out}' if r.out else ''}")
    if r.test != end["test"]:
        raise BenchmarkError("the replayed test score differs from the run's: not the same device, dtype or code?")


def cmd_list(args: argparse.Namespace) -> None:
    if args.what == "models":
        from benchmark.models import MODELS  # loads transformers: only for the list that needs it

        registry, describe = MODELS, lambda load: load.__doc__
    else:  # classes say what they are in their docstring, tasks and experiments declare it
        registry, describe = {
            "methods": (METHODS, lambda cls: cls.__doc__), "tasks": (TASKS, lambda task: task.description),
            "experiments": (EXPERIMENTS, lambda e: e.description),
        }[args.what]
    for name in registry.names():
        lines = (describe(registry.get(name)) or "").strip().splitlines()
        print(f"{name:20s} {lines[0] if lines else ''}")


def cmd_show_task(args: argparse.Namespace) -> None:
    if args.model is not None:
        from benchmark.models import check_model_name, model_kind

        check_model_name(args.model)
        args.kind = model_kind(args.model)
    print(show_task(args.task, args.n, args.template, args.kind, args.split, args.seed))


def cmd_study(args: argparse.Namespace) -> None:
    from benchmark.study.run import study

    if args.workers < 0:
        raise BenchmarkError(f"--workers {args.workers}: must be >= 0 (0: enqueue only, for external workers)")
    summary = study(EXPERIMENTS.get(args.experiment), args.preset, args.storage, args.workers, args.search,
                    args.trials)
    for name, counts in summary.items():
        print(f"{name}: " + ", ".join(f"{n} {state.lower()}" for state, n in counts.items()))


def cmd_worker(args: argparse.Namespace) -> None:
    from benchmark.study.workers import drain

    storage = open_storage(args.storage)
    cells = joined_cells(EXPERIMENTS.get(args.experiment), storage)
    if not cells:
        raise BenchmarkError(f"no study of {args.experiment} in {args.storage}; start it with benchmark study")
    counts = drain(storage, cells)
    print(f"worker {os.getpid()} done: " + ", ".join(f"{n} {s.lower()}" for s, n in counts.items()))


def cmd_doctor(args: argparse.Namespace) -> None:
    definition = EXPERIMENTS.get(args.experiment)
    problems = doctor(definition, open_storage(args.storage or default_storage_url(definition)))
    for line in problems:
        print(line)
    if problems:
        raise BenchmarkError(f"{len(problems)} problem(s) between Optuna and MLflow")
    print(f"{args.experiment}: every finished trial has a finished MLflow run with the contract metrics; no orphans")


def cmd_report(args: argparse.Namespace) -> None:
    """Every report reads run records; the MLflow store, where there is one, first fills the records it lacks."""
    from benchmark.core import records, store
    from reports import claims, leaderboard, report, runs, summary

    known = args.experiment in EXPERIMENTS
    written = records.sync(args.experiment) if known and store.exists() and store.find_experiment(args.experiment) else 0
    folder = records.root() / args.experiment
    by_records = {claims.EXPERIMENT: claims, leaderboard.EXPERIMENT: leaderboard}  # pages of their own
    if args.experiment in by_records:
        out = Path(args.out) if args.out else folder / (args.preset or "offline")
        print(by_records[args.experiment].report(folder, out, args.preset))
        print(f"records: {folder} ({written} new from MLflow); report: {out / (args.experiment + '.md')}")
        return

    # a paper table from a study's final runs, ours beside the paper's (`make demo`'s plain runs have none)
    tabled = known and not runs.final_runs(folder).empty
    if tabled:
        definition = EXPERIMENTS.get(args.experiment)
        studies = functools.partial(preset_studies, definition, storage_url=args.storage)
        print(report.report(definition, args.out or REPORTS, args.preset, studies, folder))
        print(f"records: {folder} ({written} new from MLflow)\n")
    if not tabled or (store.exists() and store.find_experiment(args.experiment)):
        print(summary.report(args.experiment, args.out or REPORTS))  # every run's latest, from MLflow


def serve(host: str, port: int) -> None:
    from benchmark import ui

    ui.serve(host, port)


def cmd_perf(args: argparse.Namespace) -> None:
    if args.directions:
        from benchmark.measurements import perf_directions
        from benchmark.models import resolve_device

        perf_directions.main(resolve_device(args.device))
        return
    from benchmark.measurements.perf import default_methods, main

    args.methods = args.methods or default_methods()
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
    r.add_argument("--dtype", default=None, help="auto|fp32|fp16|bf16|bf16-mixed")
    r.add_argument("--experiment", default=None, help="MLflow experiment (default adhoc)")
    r.add_argument("--set", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                   help="any run setting or hyperparameter; repeat the flag or list several")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.add_argument("--resume", default=None, metavar="RUN_ID",
                   help="continue this MLflow run from its last checkpoint (the same command, plus this flag)")
    r.add_argument("--save", default=None, metavar="DIR", help="save the tested weights (best on dev) here: "
                   "save_pretrained layout; LoRA runs their adapter the peft way")
    r.add_argument("--json", action="store_true", help="print the result as one JSON object (no progress bar)")
    r.set_defaults(func=cmd_run)

    rp = sub.add_parser("replay", help="rebuild a ZO run's tested weights from its seed log; score test again")
    rp.add_argument("source", help="an MLflow run id, or a seed_log.jsonl file")
    rp.add_argument("--out", default=None, help="save the weights here (save_pretrained layout; LoRA: the adapter)")
    rp.add_argument("--json", action="store_true", help="print the result as one JSON object")
    rp.set_defaults(func=cmd_replay)

    ls = sub.add_parser("list", help="registered methods, tasks or models")
    ls.add_argument("what", choices=["methods", "tasks", "models", "experiments"])
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

    st = sub.add_parser("study", help="run or resume the Optuna studies of an experiment")
    st.add_argument("experiment")
    st.add_argument("--preset", default="paper", help="paper|offline|smoke")
    st.add_argument("--workers", type=int, default=1, help="local worker processes (one per GPU if any); 0: only "
                                                             "validate and enqueue, for `benchmark worker` elsewhere")
    st.add_argument("--storage", default=None, help="Optuna storage: journal file path or postgresql://... (default "
                    "runs/optuna/EXPERIMENT.journal; an experiment that commits its records: beside them)")
    st.add_argument("--search", default="grid", help="grid: the preset's grid, each point once | tpe: free "
                                                       "search in the grid's ranges, median pruning")
    st.add_argument("--trials", type=int, default=20, help="free-search trials per cell (--search tpe)")
    st.set_defaults(func=cmd_study)

    wk = sub.add_parser("worker", help="join the running studies of an experiment (any process or machine)")
    wk.add_argument("experiment")
    wk.add_argument("--storage", required=True)
    wk.set_defaults(func=cmd_worker)

    dr = sub.add_parser("doctor", help="cross-check Optuna trials against MLflow runs")
    dr.add_argument("experiment")
    dr.add_argument("--storage", default=None)
    dr.set_defaults(func=cmd_doctor)

    rep = sub.add_parser("report", help="tables and figures from run records (MLflow fills missing ones)")
    rep.add_argument("experiment")
    rep.add_argument("--out", default=None, help="default runs/reports; claims, leaderboard: next to their records")
    rep.add_argument("--preset", default=None, help="which preset's runs (default: the one with most final runs)")
    rep.add_argument("--storage", default=None, help="Optuna storage for the study views (default: the study's journal)")
    rep.set_defaults(func=cmd_report)

    ui = sub.add_parser("ui", help="the MLflow UI on the store, after printing where each experiment's runs open")
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=5000)
    ui.set_defaults(func=lambda args: serve(args.host, args.port))

    perf = sub.add_parser("perf", help="step time, forward time and memory per method")
    perf.add_argument("--model", default="smollm2-135m")
    perf.add_argument("--task", default="rt-polarity")
    perf.add_argument("--methods", nargs="+", default=None, help="default: every method and mezo-reference")
    perf.add_argument("--batch-size", type=int, default=16)
    perf.add_argument("--steps", type=int, default=10, help="timed steps per method (after warm-up)")
    perf.add_argument("--device", default="auto")
    perf.add_argument("--dtype", default="auto", choices=["auto", "fp32", "fp16", "bf16", "bf16-mixed"])
    perf.add_argument("--set", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                      help="hyperparameters for every measured method that has them (dual_forward=false: sequential ZO)")
    perf.add_argument("--json", action="store_true")
    perf.add_argument("--directions", action="store_true", help="only what z costs per generator (ns a value)")
    perf.set_defaults(func=cmd_perf)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        args.func(args)
    except BenchmarkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Interrupted:  # Ctrl-C between steps: Interrupt already said so, in one line
        return 130
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
