"""Paper tables from a fixture MLflow store built here through the real MLflow API: rows, columns,
values, bold cells, ours-vs-paper, missing cells; and no torch on the way."""
import subprocess
import sys

import pytest

from reports import tables


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    return tmp_path


def log_runs(experiment: str, runs: list[dict]) -> None:
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{tables_store()}")
    exp_id = mlflow.set_experiment(experiment).experiment_id
    for r in runs:
        tags = {"model": "facebook/opt-2.7b", "preset": "paper", "final": "true", **r.get("tags", {})}
        with mlflow.start_run(experiment_id=exp_id, tags=tags) as run:
            mlflow.log_param("seed", r.get("seed", 0))
            mlflow.log_metric("test/score", r["test"])
        if r.get("status"):
            mlflow.MlflowClient().set_terminated(run.info.run_id, r["status"])


def tables_store() -> str:
    import os

    return os.environ["MLFLOW_TRACKING_URI"].removeprefix("sqlite:///")


def row(label: str, task: str, test: float, seed: int = 0, **extra) -> dict:
    return {"tags": {"row": label, "task": task, **extra.pop("tags", {})}, "test": test, "seed": seed, **extra}


def test_table4_rows_columns_values_bold_and_missing(store):
    log_runs("table4", [
        row("MeZO", "sst2", 0.90, 0), row("MeZO", "sst2", 0.92, 1), row("DiZO", "sst2", 0.93),
        row("DiZO", "rte", 0.70), row("MeZO", "rte", 0.71),
        row("HiZOO", "sst2", 0.99, tags={"final": "false"}),  # a grid trial, not a final run: ignored
        row("HiZOO", "rte", 0.99, status="FAILED"),  # failed: ignored
    ])
    md = tables.report("table4", str(store / "reports"), "paper")
    lines = md.split("\n\n")[1].splitlines()  # the table itself; the comparison follows
    header = next(line for line in lines if line.startswith("| method |"))
    assert header == "| method | SST-2 | RTE | CB | BoolQ | WSC | WIC | MultiRC | SQuAD | DROP |"
    body = {line.split(" | ")[0].removeprefix("| "): line.split(" | ")[1:] for line in lines if line.startswith("| ")
            and not line.startswith(("| method", "|---"))}
    assert list(body)[:9] == ["Zero-shot", "FT", "LoRA", "MeZO", "HiZOO", "DiZO", "MeZO LoRA", "HiZOO LoRA", "DiZO LoRA"]
    assert body["MeZO"][:2] == ["91.0 (1.4)", "**71.0**"]  # mean (sample std) over 2 seeds; best of its group on RTE
    assert body["DiZO"][:2] == ["**93.0**", "70.0"]
    assert body["HiZOO"][:2] == ["-", "-"]
    assert "run `make reproduce-table4 PRESET=paper`" in md
    tex = (store / "reports" / "table4" / "paper" / "table.tex").read_text()
    assert r"\toprule" in tex and r"\bottomrule" in tex and r"DiZO & \textbf{93.0} & 70.0" in tex
    compare = (store / "reports" / "table4" / "paper" / "compare.csv").read_text()
    assert "DiZO,SST-2,92.5,93.0,+0.5," in compare and "HiZOO,SST-2,90.8,-,-," in compare


def test_table3_marks_ours_outside_the_papers_spread(store):
    log_runs("table3", [row("MeZO k=16", "sst2", v, s, tags={"model": "FacebookAI/roberta-large"})
                        for s, v in enumerate((0.80, 0.81, 0.79))]
             + [row("DiZO k=16", "sst2", v, s, tags={"model": "FacebookAI/roberta-large"})
                for s, v in enumerate((0.92, 0.925, 0.915))])
    tables.report("table3", str(store / "reports"), "paper")
    compare = (store / "reports" / "table3" / "paper" / "compare.csv").read_text().splitlines()
    mezo = next(line for line in compare if line.startswith("MeZO k=16,SST-2"))
    dizo = next(line for line in compare if line.startswith("DiZO k=16,SST-2"))
    assert mezo == "MeZO k=16,SST-2,90.5 (1.2),80.0 (1.0),-10.5,*"  # 10.5 off, paper std 1.2
    assert dizo == "DiZO k=16,SST-2,92.2 (0.9),92.0 (0.5),-0.2,"  # within 0.9


def test_reports_never_import_torch(store):
    log_runs("table4", [row("MeZO", "sst2", 0.9)])
    code = ("import sys; from reports import tables; tables.report('table4', sys.argv[1], 'paper'); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    proc = subprocess.run([sys.executable, "-c", code, str(store / "reports")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_convergence_relative_to_mezo():
    from reports.convergence import Curve, relative, target

    mezo = Curve(steps=[0, 100, 200, 300, 400], dev=[0.5, 0.6, 0.7, 0.8, 0.8], steps_per_s=2.0, forwards_per_step=2)
    dizo = Curve(steps=[0, 100, 200, 300, 400], dev=[0.5, 0.7, 0.8, 0.8, 0.81], steps_per_s=1.6, forwards_per_step=2.4)
    assert target(mezo) == pytest.approx(0.792)
    rel = relative(dizo, mezo)  # DiZO reaches 0.792 at step 200, MeZO at 300
    assert rel["train_iter_pct"] == pytest.approx(100 * 200 / 300)
    assert rel["forward_pct"] == pytest.approx(100 * 200 / 300 * 1.2)
    assert rel["gpu_hours_pct"] == pytest.approx(100 * (200 / 1.6) / (300 / 2.0))
    slow = Curve(steps=[0, 100], dev=[0.5, 0.6], steps_per_s=2.0, forwards_per_step=2)
    assert relative(slow, mezo) == {"train_iter_pct": None, "forward_pct": None, "gpu_hours_pct": None}


def test_figures_are_written_from_metric_histories(store):
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{tables_store()}")
    exp_id = mlflow.set_experiment("table4").experiment_id
    for label, rate in (("MeZO", 0.001), ("DiZO", 0.002), ("FT", 0.01)):
        tags = {"model": "facebook/opt-2.7b", "preset": "paper", "final": "true", "row": label, "task": "sst2"}
        with mlflow.start_run(experiment_id=exp_id, tags=tags):
            mlflow.log_params({"seed": 0, "steps": 400})
            for step in range(1, 401):
                mlflow.log_metric("train/loss", 0.7 - rate * step ** 0.5, step=step)
            for step in range(0, 401, 100):
                mlflow.log_metric("eval/dev_score", 0.5 + min(rate * 100, 0.3) * step / 400, step=step)
                for layer in (0, 1):
                    for role in "qkvo":
                        mlflow.log_metric(f"drift/{role}/{layer}", rate * step * (layer + 1), step=step)
            mlflow.log_metrics({"test/score": 0.9, "perf/steps_per_s": 2.0, "perf/forward_passes": 800})
    out = tables.report("table4", str(store / "reports"), "paper")
    folder = store / "reports" / "table4" / "paper"
    for name in ("figure1_drift", "figure2_loss", "figure4_convergence"):
        for suffix in (".png", ".pdf"):
            path = folder / f"{name}{suffix}"
            assert path.is_file() and path.stat().st_size > 5_000, path
    assert "figure: " in out and "figure2_loss.png" in out
