"""Tasks from YAML files: fixtures in each format (JSONL, CSV, Parquet), classification and generation,
causal and masked templates; a run's MLflow tag is the file's task name and its content hash a param; a
study takes a task file like a registered task; every bad file fails through the real CLI in one line,
exit 2, nothing created."""
import os

import pytest

from benchmark.core.errors import BenchmarkError
from tasks.registry import TASKS
from tasks.sampling import sample_splits
from tests.helpers import ROWS, bench, task_file, write_rows


@pytest.mark.parametrize("fmt", ["json", "csv", "parquet"])
def test_a_task_file_in_each_format_renders_causal_and_masked_prompts(tmp_path, fmt):
    task = TASKS.get(task_file(tmp_path, fmt))
    assert task.name == "toy-file" and task.metric == "accuracy" and task.file_sha256
    _, causal = task.template("causal")
    _, masked = task.template("masked")
    splits = sample_splits(task, causal.render, seed=0)
    assert (len(splits.train), len(splits.dev), len(splits.test)) == (20, 10, 10)
    example = causal.render(ROWS[3])
    assert (example.prompt, example.candidates, example.gold) == ("Text: item 3 is fine\nVerdict:", (" bad", " good"), 1)
    example = masked.render(ROWS[4])
    assert (example.prompt, example.suffix, example.gold) == ("Text: item 4 is broken Verdict:", ".", 0)


def test_choices_from_a_column_and_gold_through_a_target_map(tmp_path):
    task = TASKS.get(task_file(tmp_path, doc_to_choice="{options}", doc_to_target="{mood}",
                               target_map={"sad": "no", "glad": "yes"}))
    example = task.template("causal")[1].render(ROWS[5])
    assert example.candidates == (" no", " yes") and example.gold == 1


def test_a_generation_task_file_scores_f1_on_the_answer_column(tmp_path):
    task = TASKS.get(task_file(tmp_path, "csv", doc_to_text="Q: what is {text}?\nA:", doc_to_choice=None,
                               doc_to_target="answer", metric_list=[{"metric": "f1"}]))
    example = task.template("causal")[1].render(ROWS[7])
    assert task.metric == "f1" and task.generation and example.candidates == (" 2",) and example.answers == ("2",)


def test_a_changed_file_or_changed_data_is_read_again(tmp_path):
    """The hash covers the YAML and its data files: an edited row changes it, and the new row is what is read."""
    path = task_file(tmp_path)
    first = TASKS.get(path)
    task_file(tmp_path, name="renamed")
    renamed = TASKS.get(path)
    assert renamed.name == "renamed" and renamed.file_sha256 != first.file_sha256
    write_rows(tmp_path / "train.jsonl", [{**ROWS[0], "text": "edited"}] + ROWS[1:], "json")
    edited = TASKS.get(path)
    assert edited.file_sha256 not in (first.file_sha256, renamed.file_sha256)
    assert {"edited", "item 0 is broken"} & {row["text"] for row in edited.load_pools().train} == {"edited"}


def test_a_run_and_a_study_take_a_task_file_like_a_registered_task(tmp_path, monkeypatch):
    import dataclasses

    import mlflow

    from benchmark.experiments.base import Experiment, Row
    from benchmark.experiments.presets import smoke
    from benchmark.study.run import study

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.chdir(tmp_path)
    path = task_file(tmp_path, "parquet")
    proc = bench("run", "mezo", path, "--model", "tiny-random-llama", "--steps", "4", "--quiet", "--experiment", "f",
                 "--set", "eval_every=2", "batch_size=4")
    assert proc.returncode == 0, proc.stderr
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    (run,) = mlflow.search_runs(experiment_names=["f"], output_format="list")
    assert run.data.tags["task"] == "toy-file" and run.data.params["task"] == path
    assert run.data.params["task_sha256"] == TASKS.get(path).file_sha256
    experiment = Experiment(name="filetask", description="test", rows=(Row("Z", "zero-shot"), Row("M", "mezo")),
                            grids={"mezo": {"lr": ("1e-3",)}},
                            presets={"smoke": dataclasses.replace(smoke((path,)), grids={"mezo": {"lr": ("1e-3",)}})})
    study(experiment, "smoke", str(tmp_path / "s.journal"))
    finals = mlflow.search_runs(experiment_names=["filetask"], filter_string="tags.final = 'true'", output_format="list")
    assert {r.data.tags["task"] for r in finals} == {"toy-file"} and len(finals) == 4  # 2 rows x seeds (0, 1)
    from benchmark.core import records
    from reports import report

    records.sync("filetask")  # what `benchmark report` does first: the runs as records, which reports read
    text = report.report(experiment, str(tmp_path / "reports"), "smoke")
    row = next(line for line in text.splitlines() if line.startswith("| M "))
    assert "toy-file" in text and "-" not in row.split("|")[2]  # the file task's column holds the runs' score


def bad(folder, case: str) -> str:
    """A task file with one thing wrong."""
    if case == "unknown column":
        return task_file(folder, doc_to_target="verdict")
    if case == "template field":
        return task_file(folder, doc_to_text="Text: {body}\nVerdict:")
    if case == "empty file":
        path = task_file(folder)
        (folder / "test.jsonl").write_text("")
        return path
    if case == "unreadable file":
        path = task_file(folder, "parquet")
        (folder / "train.parquet").write_bytes(b"PAR1 this is not parquet")
        return path
    if case == "missing file":
        path = task_file(folder)
        (folder / "train.jsonl").unlink()
        return path
    if case == "label outside the candidates":
        return task_file(folder, rows=ROWS[:30] + [{**ROWS[30], "label": 7}])
    if case == "split too small":
        return task_file(folder, test_rows=ROWS[:5])
    if case == "unknown key":
        return task_file(folder, doc_to_label="label")
    if case == "not yaml":
        path = folder / "task.yaml"
        path.write_text("task: [unclosed\n")
        return str(path)
    raise ValueError(case)


@pytest.mark.parametrize("case,message", [
    ("unknown column", "doc_to_target: 'verdict' is not a column of the data (columns: answer, label, mood, options, text)"),
    ("template field", "doc_to_text: field {body} is not a column of the data"),
    ("empty file", "data_files.test: "),
    ("unreadable file", "data_files.train: cannot read train.parquet as parquet"),
    ("missing file", "data_files.train: "),
    ("label outside the candidates", "doc_to_target: training_split row 30: gold 7 is not one of the candidates bad, good"),
    ("split too small", "sizes: test 10 > the 5 rows of the test split"),
    ("unknown key", "doc_to_label: unknown key; valid keys: task,"),
    ("not yaml", "not readable YAML"),
])
def test_a_bad_task_file_fails_in_one_line_through_the_cli(tmp_path, case, message, capsys, monkeypatch):
    """The command's own code (`benchmark.cli.main`) in this process; one case also through a child process."""
    from benchmark.cli import main

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    path = bad(tmp_path, case)
    argv = ["run", "mezo", path, "--model", "tiny-random-llama", "--steps", "2"]
    if case == "not yaml":
        proc = bench(*argv)
        status, stderr = proc.returncode, proc.stderr
    else:
        status, stderr = main(argv), capsys.readouterr().err
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert status == 2 and len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert message in lines[0] and "task.yaml" in lines[0]
    assert not (tmp_path / "mlflow.db").exists()  # failed before touching the store


def test_asking_for_more_test_examples_than_the_file_has_names_num_test(tmp_path):
    task = TASKS.get(task_file(tmp_path))
    with pytest.raises(BenchmarkError, match=r"num_test=99 but the test split of .* has 40 rows"):
        sample_splits(task, task.template("causal")[1].render, 0, num_test=99)


def test_an_empty_file_is_named_as_empty(tmp_path):
    path = task_file(tmp_path)
    (tmp_path / "test.jsonl").write_text("")
    with pytest.raises(BenchmarkError, match="data_files.test: .*test.jsonl is empty"):
        TASKS.get(path)


def test_show_task_renders_the_worked_example_file():
    proc = bench("show-task", "tasks/examples/reviews.yaml", "--n", "1", "--kind", "masked")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("product-reviews: ") and "sizes: train 300, dev 100, test 200" in proc.stdout
    assert "Overall, the" in proc.stdout and "<mask>." in proc.stdout and "' terrible'" in proc.stdout
