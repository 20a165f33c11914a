"""The paper's numbers ship with the project and parse: every cell is a number, 'mean (std)' or empty."""
import pytest

from benchmark.core.errors import BenchmarkError
from reports.paper import TABLES, Value, parse_cell, table


@pytest.mark.parametrize("text,value", [
    ("90.5 (1.2)", Value(90.5, 1.2)), ("90.5", Value(90.5)), (" 45.5 (2.0) ", Value(45.5, 2.0)), ("100", Value(100.0)),
    ("", None), ("-", None), (1.05, Value(1.05)),
])
def test_cells_parse(text, value):
    assert parse_cell(text) == value


def test_a_malformed_cell_is_a_clear_error():
    with pytest.raises(BenchmarkError, match="is not a number"):
        parse_cell("90.5 +- 1.2")


NUMERIC = {"table1_2": 2, "table3": 2, "table4": 1, "table5": 1, "table6": 4, "table8": 5, "table9": 1,
           "ablation-c2": 3, "table12_13": 2, "reference-logs": 0}  # leading label columns
# the cells the paper leaves empty: Table 1/2's memory for its two first-order rows, Table 12/13's Llama3-8B
# rows on four tasks (two methods); every other cell is a number
EMPTY = {"table1_2": 2, "table12_13": 8}


@pytest.mark.parametrize("name", sorted(NUMERIC))
def test_every_published_number_parses(name):
    df = table(name)
    cells = [parse_cell(v) for col in df.columns[NUMERIC[name]:] for v in df[col]]
    assert len(cells) > 0 and sum(c is None for c in cells) == EMPTY.get(name, 0)


def test_table4_is_the_papers():
    df = table("table4").set_index("method")
    assert list(df.columns) == ["SST-2", "RTE", "CB", "BoolQ", "WSC", "WIC", "MultiRC", "SQuAD", "DROP"]
    assert len(df) == 9 and parse_cell(df.loc["DiZO", "SST-2"]).mean > parse_cell(df.loc["MeZO", "SST-2"]).mean
    assert set(TABLES) >= {"table3", "table4", "table5", "table6", "table8", "table9", "ablation-c2", "table12_13"}


@pytest.mark.parametrize("experiment,paper,column", [
    ("table4", "table4", "method"), ("table5", "table5", "method"), ("table6", "table6", "method"),
    ("table9", "table9", "method"), ("table12", "table12_13", "method"),
])
def test_experiment_rows_are_the_papers_rows(experiment, paper, column):
    """Reports join ours to the paper's by row label: the experiment must use the paper's labels."""
    from benchmark.experiments.registry import EXPERIMENTS

    labels = {row.label for row in EXPERIMENTS.get(experiment).rows}
    published = set(table(paper)[column])
    if experiment == "table12":
        published = set(table(paper).query("model == 'Llama3-3B'")[column])
    assert labels == published
