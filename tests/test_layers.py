"""The layering is one way (tests/anatomy.py draws it: `python -m tests.anatomy`): the floor imports
nothing of ours above it, methods and tasks stand on the floor only, reports never import the harness,
and only the CLI sees everything. Checked on the syntax trees, imports inside functions included."""
import pytest

from tests import anatomy


def test_no_module_imports_a_layer_above_its_own():
    upward = [f"{src} -> {dst}" for src, dst, _ in anatomy.edges() if anatomy.forbidden(src, dst)]
    assert upward == []


def test_every_module_has_a_role():
    assert [m for m in anatomy.sources() if anatomy.role(m) is None] == []


@pytest.mark.parametrize("src,dst,upward", [
    ("benchmark.core.names", "methods.mezo", True),  # the floor reaching up
    ("methods.dizo", "benchmark.runner", True),  # a part reaching into the harness
    ("tasks.hub", "benchmark.core.errors", False),
    ("reports.report", "benchmark.study.storage", True),  # same rank, still not allowed
    ("reports.report", "benchmark.experiments.base", False),
    ("reports.report", "tasks.task_file", True),  # a report asks the experiment's cell, not the task
    ("reports.claims", "methods.registry", True),
    ("benchmark.runner", "reports.tables", True),  # the harness and reports meet only in the CLI
    ("methods.mezo", "tasks.base", True),  # a method knows no task
    ("benchmark.cli", "reports.report", False),
])
def test_the_checker_tells_upward_from_downward(src, dst, upward):
    assert anatomy.forbidden(src, dst) is upward


def test_the_checker_sees_imports_inside_functions(tmp_path):
    module = tmp_path / "probe.py"
    module.write_text("def f():\n    from benchmark.runner import run\n    import methods.mezo\n")
    assert anatomy.imports("methods.probe", module) == [("benchmark.runner", True), ("methods.mezo", True)]


def test_the_checker_resolves_relative_imports(tmp_path):
    module = tmp_path / "probe.py"
    module.write_text("from .base import Task\nfrom ..benchmark import runner\n")
    assert [m for m, _ in anatomy.imports("tasks.probe", module)] == ["tasks.base", "benchmark.runner"]


def test_no_test_module_imports_another():
    modules = {m for m in anatomy.suite_sources() if m.rpartition(".")[2].startswith("test_") or m == "tests.conftest"}
    crossing = [f"{src} -> {dst}" for src, dst, _ in anatomy.suite_edges() if dst in modules]
    assert crossing == []
