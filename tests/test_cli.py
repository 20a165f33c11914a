"""The CLI as a user meets it: one clear error line before any work, and a real run into MLflow."""
import json
import os
import signal
import subprocess
import time

import pytest
import torch

from tests.helpers import BENCH, bench


@pytest.fixture(autouse=True)
def store(tmp_path, monkeypatch):
    """Every command here records into the test's own MLflow store (and checkpoint folder)."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.setenv("BENCHMARK_CHECKPOINTS", str(tmp_path / "checkpoints"))


@pytest.mark.parametrize("args,message", [
    (["run", "sgd", "rt-polarity"], "unknown method 'sgd'; choose from: dizo, dizo-fo,"),
    (["run", "mezo", "imdb"], "unknown task 'imdb'; choose from:"),
    (["run", "mezo", "rt-polarity", "--model", "gpt9"], "unknown model 'gpt9'"),
    (["run", "mezo", "rt-polarity", "--steps", "0"], "steps=0 is out of range: must be > 0"),
    (["run", "mezo", "rt-polarity", "--set", "eps=-1"], "eps=-1.0 is out of range: must be > 0"),
    (["run", "mezo", "rt-polarity", "--set", "lr=fast"], "lr='fast': expected float"),
    (["run", "mezo", "rt-polarity", "--set", "learning_rate=1e-6"], "unknown setting 'learning_rate'; valid keys:"),
    (["run", "mezo", "rt-polarity", "--set", "lr"], "--set expects key=value"),
    (["run", "mezo", "rt-polarity", "--set", "lr=nan"], "lr='nan': expected float"),
    (["run", "ft", "rt-polarity", "--set", "eps=1e-3"], "unknown setting 'eps'"),
    (["run", "mezo", "rt-polarity", "--dtype", "fp8"], "dtype='fp8' is out of range: must be one of"),
    (["run", "mezo", "rt-polarity", "--set", "template=fancy"], "task rt-polarity: no causal-LM template 'fancy'"),
    (["run", "mezo", "squad", "--set", "k=16"], "k=16: task squad is generation"),
    (["run", "mezo", "squad", "--model", "tiny-random-roberta"], "task squad has no prompt for masked LMs"),
    (["run", "mezo", "rt-polarity", "--set", "k=0"], "k=0 is out of range: must be > 0"),
    (["show-task", "rt-polarity", "--template", "lm-bff"], "no causal-LM template 'lm-bff'"),
    (["show-task", "rt-polarity", "--split", "val"], "--split 'val': expected train, dev or test"),
    (["perf", "--set", "nonsense=1"], "--set nonsense: none of the measured methods has this hyperparameter"),
    (["perf", "--set", "dual_forward=maybe"], "dual_forward='maybe': expected bool"),
    (["run", "mezo", "rt-polarity", "--resume", "0abc"], "--resume 0abc: no checkpoint in "),
    (["replay", "0abc"], "0abc: neither a seed log file nor a run in sqlite:///"),
])
def test_bad_input_fails_in_one_line_before_work(args, message, tmp_path, capsys):
    """The command's own code (`benchmark.cli.main`) in this process: 21 child processes cost half a minute
    of start-up; the process boundary (exit status, stderr) is held once below."""
    from benchmark.cli import main

    assert main(list(args)) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert not (tmp_path / "mlflow.db").exists()  # failed before touching the store


def test_a_bad_argument_ends_the_process_with_status_2_and_one_line(tmp_path):
    proc = bench("run", "mezo", "rt-polarity", "--set", "lr=fast")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == ["error: lr='fast': expected float"]
    assert not (tmp_path / "mlflow.db").exists()


def test_unreachable_dataset_hub_fails_in_one_line_at_once(tmp_path):
    began = time.time()
    proc = bench("run", "mezo", "sst2", "--model", "tiny-random-llama", "--steps", "1",
                 env={"HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_OFFLINE": "", "ZOBENCH_DATA_DIR": str(tmp_path)})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: task sst2: the dataset hub 127.0.0.1:9 is unreachable"), lines
    assert time.time() - began < 20  # datasets alone retries for ~23 s, after ~10 s of start-up
    assert not (tmp_path / "mlflow.db").exists()


@pytest.mark.parametrize("command", [
    ("run", "mezo", "rt-polarity", "--model", "tiny-random-llama", "--steps", "1"), ("report", "table4"),
])
def test_unreachable_tracking_server_fails_in_one_line(tmp_path, command):
    proc = bench(*command, env={"MLFLOW_TRACKING_URI": "http://127.0.0.1:9"})
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: MLflow tracking store http://127.0.0.1:9 is unreachable")


def test_list_shows_registered_names(tmp_path):
    out = bench("list", "methods").stdout
    names = [line.split()[0] for line in out.splitlines()]
    assert names == sorted(names) and {"ft", "mezo", "hizoo", "dizo", "zero-shot", "dizo-fo-lora"} <= set(names)
    assert "smollm2-135m" in bench("list", "models").stdout


def test_run_records_the_mlflow_contract(tmp_path):
    proc = bench("run", "mezo", "rt-polarity", "--model", "tiny-random-llama", "--steps", "4", "--seed", "3",
                 "--experiment", "cli-test", "--json", "--set", "num_train=16", "num_dev=8", "num_test=8",
                 "--set", "eval_every=2", "--set", "batch_size=4")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)  # --json: one object, what scripts read (benchmark/measurements/)

    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    runs = mlflow.search_runs(experiment_names=["cli-test"])
    assert len(runs) == 1
    run = MlflowClient().get_run(runs.run_id[0])
    assert run.info.status == "FINISHED"
    tags = run.data.tags
    assert (tags["method"], tags["task"], tags["model"], tags["device"]) == ("mezo", "rt-polarity", "tiny-random-llama", "cpu")
    assert tags["cpu"].endswith(f"({torch.backends.cpu.get_cpu_capability()})") and len(tags["cpu"]) > 3
    assert tags["git_commit"] and (tags["template"], tags["metric"]) == ("mezo", "accuracy")
    params = run.data.params
    assert params["lr"] == "1e-06" and params["eps"] == "0.001" and params["steps"] == "4" and params["seed"] == "3"
    metrics = run.data.metrics
    for key in ["dev/best_score", "test/score", "perf/peak_memory_gb", "perf/avg_memory_gb", "perf/steps_per_s",
                "perf/train_hours", "perf/forward_passes", "train/loss", "eval/dev_score", "train/projected_grad",
                "mem/allocated_gb"]:
        assert key in metrics, key
    assert metrics["perf/forward_passes"] == 8
    assert result["run_id"] == run.info.run_id and (result["method"], result["seed"]) == ("mezo", 3)
    assert all(result[k] == metrics[k] for k in ("dev/best_score", "test/score", "perf/forward_passes"))
    history = MlflowClient().get_metric_history(run.info.run_id, "train/loss")
    assert [m.step for m in history] == [1, 2, 3, 4]
    dev_steps = [m.step for m in MlflowClient().get_metric_history(run.info.run_id, "eval/dev_score")]
    assert dev_steps == [0, 2, 4]

    report = bench("report", "cli-test", "--out", str(tmp_path / "reports"))
    assert report.returncode == 0, report.stderr
    assert "| mezo | rt-polarity | mezo | tiny-random-llama |" in report.stdout
    assert (tmp_path / "reports" / "cli-test" / "summary.csv").is_file()


@pytest.mark.slow
def test_perf_json_reports_every_field(tmp_path):
    import json

    from benchmark.measure import cpu_name

    proc = bench("perf", "--model", "tiny-random-llama", "--methods", "mezo-reference", "mezo", "dizo",
                 "--steps", "1", "--batch-size", "4", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert list(rows) == ["mezo-reference", "mezo", "dizo"]
    for row in rows.values():
        for key in ("step_s", "forward_s", "step_over_forwards", "steps_per_s", "throughput_vs_mezo",
                    "peak_memory_gb", "avg_memory_gb"):
            assert row[key] > 0, key
    assert rows["mezo"]["speedup_vs_reference"] > 0 and rows["dizo"]["projection_overhead"] > 0
    for row in rows.values():  # the derived columns are what they say, from the measured ones
        assert row["step_over_forwards"] == pytest.approx(row["step_s"] / (row["forward_passes"] * row["forward_s"]))
        assert row["throughput_vs_mezo"] == pytest.approx(row["steps_per_s"] / rows["mezo"]["steps_per_s"])
        assert row["peak_vs_mezo"] == pytest.approx(row["peak_memory_gb"] / rows["mezo"]["peak_memory_gb"])
    assert rows["mezo"]["speedup_vs_reference"] == pytest.approx(rows["mezo-reference"]["step_s"] / rows["mezo"]["step_s"])
    assert rows["dizo"]["steps_per_s"] < 1 / rows["dizo"]["step_s"]  # the projection, amortised, is in its rate
    assert {row["hardware"] for row in rows.values()} == {cpu_name()}  # the CPU's name and ISA, not a bare "cpu"


def test_show_task_prints_rendered_prompts_candidates_and_gold(tmp_path):
    proc = bench("show-task", "rt-polarity", "--n", "2")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("--- test example") == 2 and proc.stdout.count(" It was\n") == 2
    assert proc.stdout.count("candidates (* gold):") == 2 and "' terrible'" in proc.stdout
    masked = bench("show-task", "rt-5way", "--model", "tiny-random-roberta", "--n", "1").stdout
    assert "It was<mask>." in masked and "' okay'" in masked
    review = bench("show-task", "rt-polarity", "--template", "review", "--n", "1").stdout
    assert "Review: " in review and "\nSentiment:\n" in review and "' positive'" in review


@pytest.mark.slow
def test_ctrl_c_ends_a_run_killed_interrupted_in_one_line(tmp_path):
    """As in a study: the run stops between steps, its MLflow run ends KILLED with reason `interrupted`
    (the steps so far recorded), one line says so, exit 130."""
    import mlflow

    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    mlflow.MlflowClient().search_experiments()  # create the store's schema here, not racing the child's migration
    proc = subprocess.Popen([*BENCH, "run", "mezo", "rt-polarity", "--model", "tiny-random-llama", "--steps", "100000",
                             "--quiet", "--set", "num_train=16", "num_dev=8", "num_test=8", "batch_size=4"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    try:
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None:
            time.sleep(0.5)
            if mlflow.search_runs(search_all_experiments=True, output_format="list"):
                time.sleep(3)  # some steps in
                proc.send_signal(signal.SIGINT)
                break
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err[-2000:]
    ours = [line for line in err.splitlines() if " INFO " not in line]  # MLflow's own start-up log lines aside
    assert ours == ["interrupted: stopping after this step (Ctrl-C again to stop now)"], err[-2000:]
    run, = mlflow.search_runs(experiment_names=["adhoc"], output_format="list")
    assert (run.info.status, run.data.tags.get("reason")) == ("KILLED", "interrupted")
    assert mlflow.MlflowClient().get_metric_history(run.info.run_id, "train/loss")  # the steps so far are kept


def test_the_gpu_tables_dry_run_on_cpu_writes_each_row_and_its_ratios(tmp_path, capsys):
    """`table10_gpu --device cpu --config tiny`: the prepared GPU check's measurement, run through on a CPU. Its
    record holds each row as measured, a row past `--budget-s` is named as not reached, and the printed table
    gives the ratios (MeZO's throughput against itself 1.00)."""
    import json

    from benchmark.measurements import table10_gpu

    out = tmp_path / "t10.json"
    table10_gpu.main(["--device", "cpu", "--config", "tiny", "--steps", "1", "--out", str(out),
                      "--methods", "mezo-reference", "mezo", "dizo", "lora"])
    record = json.loads(out.read_text())
    assert [r["method"] for r in record["rows"]] == ["mezo-reference", "mezo", "dizo", "lora"]
    assert all(r["step_s"] > 0 and r["forward_passes"] >= 1 for r in record["rows"])
    assert record["rows"][2]["projection_over_its_forwards"] > 0 and record["device"] != "cpu"  # the CPU named
    printed = capsys.readouterr().out
    assert "| mezo | " in printed and "| 1.00 |" in printed.split("| mezo | ")[1].split("\n")[0]
    table10_gpu.main(["--device", "cpu", "--config", "tiny", "--steps", "1", "--out", str(out), "--budget-s", "0",
                      "--methods", "mezo", "lora"])
    assert json.loads(out.read_text())["rows"][1] == {"method": "lora", "error": "not reached (--budget-s)"}
