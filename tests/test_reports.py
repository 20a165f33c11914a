"""Paper tables, figures and the index page from a fixture MLflow store built here through the real
MLflow API: rows, columns, values, bold cells, relative columns, ours-vs-paper, missing cells,
provenance; and no torch on the way."""
import functools
import subprocess
import sys

import pandas as pd
import pytest

from benchmark.core import records
from benchmark.experiments.registry import EXPERIMENTS
from benchmark.study.storage import preset_studies
from reports import report, tables
from tests.helpers import bench

OPT = "facebook/opt-2.7b"


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.chdir(tmp_path)  # the default Optuna journal (runs/optuna/) is looked up here
    return tmp_path


@pytest.fixture
def drawn(monkeypatch) -> dict:
    """Every figure the reports save, by name, as drawn: its axes hold the data a reader sees."""
    from reports import figures

    captured, real = {}, figures._save

    def save(fig, folder, name):
        captured[name] = fig
        return real(fig, folder, name)

    monkeypatch.setattr(figures, "_save", save)
    return captured


def lines(fig, panel: int = 0) -> dict[str, tuple[list, list]]:
    """label -> (x, y) of the panel's labelled lines."""
    ax = fig.axes[panel]
    return {ln.get_label(): (list(ln.get_xdata()), list(ln.get_ydata())) for ln in ax.get_lines()
            if not ln.get_label().startswith("_")}


def bars(fig, panel: int, label: str) -> list[float]:
    """The heights of the panel's bars drawn under `label`."""
    return [patch.get_height() for c in fig.axes[panel].containers if c.get_label() == label for patch in c]


def log_runs(experiment: str, runs: list[dict]) -> list[str]:
    """Log each run (tags, seed, test score, optional summary metrics and per-step histories) in one batch,
    tagged as a study's final trial, then write the records a report reads (what `benchmark report` does first)."""
    import os

    import mlflow
    from mlflow.entities import Metric

    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    client = mlflow.MlflowClient()
    exp_id = mlflow.set_experiment(experiment).experiment_id
    ids = []
    for i, r in enumerate(runs):
        tags = {"model": OPT, "preset": "paper", "final": "true", "git_commit": "abc123", "device": "NVIDIA H100",
                "trial": str(i), **r.get("tags", {})}
        tags.setdefault("study", f"{experiment}/{tags['preset']}/{tags['model']}/{tags['task']}/{tags['row']}/final")
        run_id = client.create_run(exp_id, tags=tags).info.run_id
        metrics = [Metric(k, v, 0, 0) for k, v in {"test/score": r["test"], **r.get("metrics", {})}.items()]
        metrics += [Metric(k, v, 0, step) for k, points in r.get("history", {}).items() for step, v in points]
        for start in range(0, len(metrics), 1000):
            client.log_batch(run_id, metrics=metrics[start:start + 1000])
        client.log_param(run_id, "seed", r.get("seed", 0))
        client.log_param(run_id, "steps", r.get("steps", 400))
        client.set_terminated(run_id, r.get("status", "FINISHED"))
        ids.append(run_id)
    records.sync(experiment)
    return ids


def row(label: str, task: str, test: float, seed: int = 0, **extra) -> dict:
    return {"tags": {"row": label, "task": task, **extra.pop("tags", {})}, "test": test, "seed": seed, **extra}


def trained(label: str, task: str, dev: list[float], rate: float, seed: int = 0, loss: float = 0.001,
            tags: dict | None = None, **metrics):
    """A run with a dev curve every 100 steps, a loss curve, drift, and the perf summary metrics."""
    history = {"eval/dev_score": list(zip(range(0, 100 * len(dev), 100), dev)),
               "train/loss": [(s, 0.7 - loss * s ** 0.5) for s in range(1, 401)],
               **{f"drift/{role}/{layer}": [(s, loss * s * (layer + 1)) for s in range(0, 401, 100)]
                  for layer in (0, 1) for role in "qkvo"}}
    return row(label, task, 0.9, seed, history=history, tags=tags or {},
               metrics={"perf/steps_per_s": rate, "perf/forward_passes": 800.0, **metrics})


def body(md: str) -> tuple[str, dict[str, list[str]]]:
    lines = md.splitlines()
    header = next(line for line in lines if line.startswith("| method |"))
    cells = {line.split(" | ")[0].removeprefix("| "): line.removesuffix(" |").split(" | ")[1:] for line in lines
             if line.startswith("| ") and not line.startswith(("| method", "|---"))}
    return header, cells


def test_table4_rows_columns_values_bold_and_missing(store):
    log_runs("table4", [
        row("MeZO", "sst2", 0.90, 0), row("MeZO", "sst2", 0.92, 1), row("DiZO", "sst2", 0.93),
        row("DiZO", "rte", 0.70), row("MeZO", "rte", 0.71),
        row("HiZOO", "sst2", 0.99, tags={"final": "false"}),  # a grid trial, not a final run: ignored
        row("HiZOO", "rte", 0.99, status="FAILED"),  # failed: ignored
    ])
    report.report(EXPERIMENTS.get("table4"), "reports", "paper")
    folder = store / "reports" / "table4" / "paper"
    md = (folder / "table.md").read_text()
    header, cells = body(md)
    assert header == "| method | SST-2 | RTE | CB | BoolQ | WSC | WIC | MultiRC | SQuAD | DROP |"
    assert list(cells) == ["Zero-shot", "FT", "LoRA", "MeZO", "HiZOO", "DiZO", "MeZO LoRA", "HiZOO LoRA", "DiZO LoRA"]
    assert cells["MeZO"][:2] == ["91.0 (1.4)", "**71.0**"]  # mean (sample std) over 2 seeds; best of its group on RTE
    assert cells["DiZO"][:2] == ["**93.0**", "70.0"]
    assert cells["HiZOO"][:2] == ["-", "-"]
    assert "(DiZO LoRA on boolq, " in md and "run `make reproduce-table4 PRESET=paper`" in md
    tex = (folder / "table.tex").read_text()
    assert r"\toprule" in tex and r"\bottomrule" in tex and r"DiZO & \textbf{93.0} & 70.0" in tex
    assert pd.read_csv(folder / "table.csv")["SST-2"].tolist()[3:6] == ["91.0 (1.4)", "-", "93.0"]
    compare = (folder / "compare.csv").read_text()
    assert "DiZO,SST-2,92.5,93.0,+0.5," in compare and "HiZOO,SST-2,90.8,-,-," in compare


def test_a_paper_table_renders_from_committed_records_alone(store):
    """The records a report wrote are all the next one needs: with the MLflow store gone, the CLI renders the
    same table (a fresh clone of what is committed)."""
    log_runs("table4", [row("MeZO", "sst2", 0.90, 0), row("MeZO", "sst2", 0.92, 1), row("DiZO", "sst2", 0.93)])
    first = bench("report", "table4", "--preset", "paper", "--out", "first", cwd=store)
    assert first.returncode == 0, first.stderr
    (store / "mlflow.db").unlink()
    again = bench("report", "table4", "--preset", "paper", "--out", "again", cwd=store)
    assert again.returncode == 0, again.stderr
    assert "records: reports/results/table4 (0 new from MLflow)" in again.stdout
    table = (store / "again" / "table4" / "paper" / "table.md").read_text()
    assert table == (store / "first" / "table4" / "paper" / "table.md").read_text()
    assert "| MeZO | 91.0 (1.4) |" in table and "| DiZO | **93.0** |" in table
    assert not (store / "mlflow.db").exists()  # nothing was created to read from


def test_table3_marks_ours_outside_the_papers_spread(store):
    log_runs("table3", [row("MeZO k=16", "sst2", v, s, tags={"model": "FacebookAI/roberta-large"})
                        for s, v in enumerate((0.80, 0.81, 0.79))]
             + [row("DiZO k=16", "sst2", v, s, tags={"model": "FacebookAI/roberta-large"})
                for s, v in enumerate((0.92, 0.925, 0.915))])
    report.report(EXPERIMENTS.get("table3"), "reports", "paper")
    compare = (store / "reports" / "table3" / "paper" / "compare.csv").read_text().splitlines()
    mezo = next(line for line in compare if line.startswith("MeZO k=16,SST-2"))
    dizo = next(line for line in compare if line.startswith("DiZO k=16,SST-2"))
    assert mezo == "MeZO k=16,SST-2,90.5 (1.2),80.0 (1.0),-10.5,*"  # 10.5 off, paper std 1.2
    assert dizo == "DiZO k=16,SST-2,92.2 (0.9),92.0 (0.5),-0.2,"  # within 0.9


def test_table6_one_table_per_task_with_memory_speed_and_percent_of_mezo(store):
    mezo_dev = [0.5, 0.6, 0.7, 0.8, 0.8]  # target 0.792: step 300
    log_runs("table6", [
        trained("MeZO", "rte", mezo_dev, 2.0, **{"perf/peak_memory_gb": 7.0, "perf/avg_memory_gb": 6.5}),
        trained("DiZO", "rte", [0.5, 0.7, 0.8, 0.8, 0.81], 1.6, **{"perf/peak_memory_gb": 8.0, "perf/avg_memory_gb": 7.5}),
        trained("HiZOO", "rte", [0.5, 0.55, 0.6, 0.6, 0.6], 1.0, **{"perf/peak_memory_gb": 12.0}),  # never reaches
    ])
    report.report(EXPERIMENTS.get("table6"), "reports", "paper")
    folder = store / "reports" / "table6" / "paper"
    header, cells = body((folder / "table-rte.md").read_text())
    assert header == "| method | peak GB | avg GB | it/s | train iter % | GPU hours % |"
    assert cells["MeZO"] == ["**7.0**", "**6.5**", "**2.0**", "100.0", "100.0"]
    assert cells["DiZO"] == ["8.0", "7.5", "1.6", "**66.7**", "**83.3**"]  # 200/300 steps; (200/1.6)/(300/2.0) hours
    assert cells["HiZOO"] == ["12.0", "-", "1.0", "n/r", "n/r"]
    assert cells["FT"] == ["-"] * 5
    text = (folder / "table-rte.md").read_text()
    assert "99% of MeZO's best dev score after step 0" in text and "n/r: the target was never reached" in text
    assert (folder / "table-sst2.md").is_file() and (folder / "table-squad.tex").is_file()
    compare = pd.read_csv(folder / "compare.csv", dtype=str, keep_default_na=False)
    dizo = compare[(compare["method"] == "DiZO") & (compare["table"] == "table-rte")].set_index("column")
    assert dizo.loc["peak GB", ["paper", "ours", "diff"]].tolist() == ["9.5", "8.0", "-1.5"]
    assert dizo.loc["train iter %", ["paper", "ours"]].tolist() == ["60.0", "66.7"]


def test_paper_rows_of_tables_8_9_and_c2_line_up_with_ours():
    empty = pd.DataFrame(columns=["run_id", "seed", "task", "row", "model", "preset"])
    from benchmark.experiments import ablation_c2, table8, table9

    def paper(experiment, rows, column):
        t = tables.build(experiment, [r.label for r in rows], ["sst2", "squad"], empty, "make x")[0]
        return {r: t.paper[(r, column)].mean for r in t.rows if (r, column) in t.paper}

    sst2 = tables.Column("sst2")
    assert paper("table8", table8.ROWS, sst2) == {"DiZO [q,v,k,o,dense]": 91.7, "DiZO [q,v,k,o]": 92.2,
                                                  "DiZO [q,v,k]": 91.9, "DiZO [q,v]": 92.5, "DiZO [q]": 90.5}
    assert paper("ablation-c2", ablation_c2.ROWS, sst2) == {"MeZO": 90.5, "DiZO no re-init": 88.6,
                                                            "DiZO no clipping": 90.9, "DiZO": 92.2}
    assert paper("table9", table9.ROWS, tables.Column("squad", "test"))["theta_{t-1} projection"] == 67.2
    assert paper("table9", table9.ROWS, tables.Column("squad", "gpu_hours_pct"))["LR projection"] == 89.8
    t9 = tables.build("table9", [r.label for r in table9.ROWS], ["sst2"], empty, "make x")[0]
    assert [t9.header(c) for c in t9.columns] == ["SST-2 test", "SST-2 GPU hours %"]


def test_figures_index_and_provenance(store, drawn):
    import optuna

    dizo = trained("DiZO", "sst2", [0.5, 0.7, 0.8, 0.8, 0.81], 1.6, loss=0.002)
    dizo["history"]["dizo/ratio_at_bound"] = [(s, 0.25 * (s // 50 % 3)) for s in range(49, 400, 50)]
    ids = log_runs("table4", [trained("MeZO", "sst2", [0.5, 0.6, 0.7, 0.8, 0.8], 2.0), dizo,
                              trained("FT", "sst2", [0.5, 0.9, 0.9, 0.9, 0.9], 1.0, loss=0.01,
                                      tags={"packages": "torch 2.13.0, peft 0.18"})])
    journal = store / "runs" / "optuna" / "table4.journal"
    journal.parent.mkdir(parents=True)
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
    study = optuna.create_study(study_name=f"table4/paper/{OPT}/sst2/MeZO", storage=storage, direction="maximize")
    for lr, value in (("1e-6", 0.7), ("1e-7", 0.6)):
        study.add_trial(optuna.trial.create_trial(
            params={"lr": lr}, distributions={"lr": optuna.distributions.CategoricalDistribution(["1e-6", "1e-7"])},
            value=value))
    table4 = EXPERIMENTS.get("table4")
    out = report.report(table4, "reports", "paper", functools.partial(preset_studies, table4, storage_url=None))
    folder = store / "reports" / "table4" / "paper"
    figures = ["figure1_drift", "figure2_loss", "figure2_ratio_at_bound", "figure4_convergence",
               "optuna/table4_paper_facebook_opt-2.7b_sst2_MeZO"]
    for name in figures:
        for suffix in (".png", ".pdf"):
            path = folder / f"{name}{suffix}"
            assert path.is_file() and path.stat().st_size > 5_000, path
    assert not (folder / "figure5_ablation.png").exists()  # table4 has no ablation rows
    # what is drawn: DiZO's logged share of ratios on a bound, the rows' loss curves, MeZO's bars at 100 %
    assert lines(drawn["figure2_ratio_at_bound"]) == {
        "DiZO": (list(range(49, 400, 50)), [0.25 * (s // 50 % 3) for s in range(49, 400, 50)])}
    loss = lines(drawn["figure2_loss"])
    assert set(loss) == {"MeZO", "DiZO"} and loss["MeZO"][0] == list(range(1, 401))
    assert loss["DiZO"][1][0] == pytest.approx(0.7 - 0.002) and loss["DiZO"][1][-1] < loss["MeZO"][1][-1]
    for panel in range(3):
        assert bars(drawn["figure4_convergence"], panel, "MeZO") == [100.0]
        assert 0 < bars(drawn["figure4_convergence"], panel, "DiZO")[0] <= 100.0
    drift = lines(drawn["figure1_drift"])  # FT's distance per layer at the last logged step, per role
    assert drift["Q (step 400)"] == ([0, 1], [0.01 * 400 * 1, 0.01 * 400 * 2])
    page = (folder / "report.md").read_text()
    for link in ("(table.md)", "(table.tex)", "(compare.md)", "(figure4_convergence.png)", "(figure4_convergence.pdf)",
                 "(optuna/table4_paper_facebook_opt-2.7b_sst2_MeZO.png)"):
        assert link in page, link
    assert all(run_id in page for run_id in ids)
    assert "`abc123` (3 runs)" in page and "`NVIDIA H100` (3 runs)" in page
    assert "`torch 2.13.0, peft 0.18` (1 runs)" in page and "`not recorded` (2 runs)" in page
    assert "[table4 (paper)](table4/paper/report.md)" in (store / "reports" / "index.md").read_text()
    assert f"index: {folder.relative_to(store) / 'report.md'}" in out


def test_figure5_ablation(store, drawn):
    rows = ("MeZO", "DiZO no re-init", "DiZO no clipping", "DiZO")
    log_runs("ablation-c2", [{**trained(label, task, [0.5, 0.6], 1.0, seed, loss=0.001 * (i + 1)),
                              "test": 0.6 + 0.05 * i + 0.01 * (seed == 21)}
                             for i, label in enumerate(rows) for task in ("sst2", "snli") for seed in (13, 21)])
    report.report(EXPERIMENTS.get("ablation-c2"), "reports", "paper")
    folder = store / "reports" / "ablation-c2" / "paper"
    for suffix in (".png", ".pdf"):
        assert (folder / f"figure5_ablation{suffix}").stat().st_size > 5_000
    fig = drawn["figure5_ablation"]  # left: test x 100 per task, mean over the two seeds; right: loss curves
    assert [bars(fig, 0, label) for label in rows] == [[60.5, 60.5], [65.5, 65.5], [70.5, 70.5], [75.5, 75.5]]
    assert set(lines(fig, 1)) == set(rows)
    _, cells = body((folder / "table.md").read_text())
    assert cells["DiZO no clipping"][:2] == ["70.5 (0.7)", "70.5 (0.7)"]  # mean (std) of 70 and 71
    assert cells["DiZO"][:2] == ["**75.5 (0.7)**", "**75.5 (0.7)**"]


def test_reports_never_import_torch(store):
    log_runs("table4", [row("MeZO", "sst2", 0.9)])
    code = ("import sys; from benchmark.experiments.registry import EXPERIMENTS; from reports import report; "
            "report.report(EXPERIMENTS.get('table4'), 'reports', 'paper'); assert 'torch' not in sys.modules, 'torch imported'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=store)
    assert proc.returncode == 0, proc.stderr[-2000:]
    # the CLI's path too (it also reads the Optuna storage): every module it imported, from -X importtime
    cli = subprocess.run([sys.executable, "-X", "importtime", "-m", "benchmark.cli", "report", "table4", "--preset",
                          "paper"], capture_output=True, text=True, cwd=store)
    assert cli.returncode == 0, cli.stderr[-2000:]
    imported = {line.rpartition("|")[2].strip() for line in cli.stderr.splitlines() if line.startswith("import time:")}
    assert "reports.report" in imported and "torch" not in imported


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
    # training that never beats zero-shot: the target is MeZO's best after step 0, and MeZO is 100% of itself
    flat = Curve(steps=[0, 100, 200], dev=[0.9, 0.5, 0.6], steps_per_s=2.0, forwards_per_step=2)
    assert target(flat) == pytest.approx(0.594) and relative(flat, flat)["train_iter_pct"] == 100
    assert relative(Curve([0, 100], [0.9, 0.59], 2.0, 2), flat)["train_iter_pct"] is None  # 0.9 at step 0 does not count
