"""A task from a YAML file: your data, your prompt, no Python (lm-evaluation-harness's keys where they exist).

    task: product-reviews                  # the name runs are tagged with
    description: Shop reviews, positive or negative
    dataset_path: csv                      # json | csv | parquet (local files), or a hub dataset id
    data_files: {train: reviews_train.csv, test: reviews_test.csv}   # relative to this file
    training_split: train                  # feeds train and dev samples (default train)
    test_split: test                       # the held-out pool the test sample comes from (default test)
    doc_to_text: "Review: {text}\\nThe product is"   # {column} fields; or {causal: ..., masked: "... {mask}."}
    doc_to_choice: [bad, good]             # fixed label words, or "{column}" holding each row's choices
    doc_to_target: label                   # the gold column: an index into the choices, or a choice itself
    target_map: {neg: bad, pos: good}      # optional: the gold column's values -> choices (or indices)
    target_delimiter: " "                  # put before each choice (default " ")
    metric_list: [{metric: acc}]           # acc, or f1 (generation: no doc_to_choice; the target is the answer)
    sizes: {train: 300, dev: 100, test: 200}   # optional defaults for num_train/num_dev/num_test

Everything is checked when the file is read, before a model loads, and a problem is one line naming the
field: an unknown key, a file that is missing, empty or unreadable, a template field or a target column the
data lacks, a gold value outside the candidates, a split smaller than the sizes asked.
"""
from __future__ import annotations

import hashlib
import string
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from benchmark.core.errors import BenchmarkError, first_line
from tasks.base import Example, Pools, Row, Sizes, Task, Template
from tasks.hub import hf_pools

SUFFIXES = (".yaml", ".yml")
LOCAL = ("json", "csv", "parquet")  # `datasets` builders for local files (json reads JSON lines too)
KEYS = ("task", "description", "dataset_path", "dataset_name", "data_files", "training_split", "test_split",
        "doc_to_text", "doc_to_choice", "doc_to_target", "target_map", "target_delimiter", "metric_list", "sizes")
REQUIRED = ("task", "dataset_path", "doc_to_text", "doc_to_target")
METRICS = {"acc": "accuracy", "accuracy": "accuracy", "f1": "f1"}
MASK = "mask"  # the field a masked-LM template puts where the candidate goes


def is_task_file(name: str) -> bool:
    return name.endswith(SUFFIXES)


def _raw(file: Path) -> dict:
    """The file's keys without checking them (what naming and hashing need); {} where it is not a mapping."""
    import yaml

    try:
        raw = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}
    return raw if isinstance(raw, dict) else {}


def name_of(task: str) -> str:
    """What runs of `task` are tagged with: a file's `task:` name (read without loading its data), else `task`."""
    return str(_raw(Path(task)).get("task", task)) if is_task_file(task) else task


def sha256(path: str) -> str:
    """The file's content and its local data files' (split by split): a run's `task_sha256`, what `--resume`
    and replay compare, and what a changed task is re-read on. A hub dataset is named, not hashed."""
    file = Path(path)
    digest = hashlib.sha256(file.read_bytes())
    files = _raw(file).get("data_files")
    for split, name in sorted((str(k), str(v)) for k, v in files.items()) if isinstance(files, dict) else ():
        if (file.parent / name).is_file():
            digest.update(f"|{split}:{name}|".encode())
            digest.update((file.parent / name).read_bytes())
    return digest.hexdigest()


def load(path: str) -> Task:
    """The task a file describes, checked against its data; cached while the file's content is unchanged."""
    file = Path(path)
    if not file.is_file():
        raise BenchmarkError(f"task file {path}: no such file")
    return _load(str(file.resolve()), sha256(path))


@dataclass(frozen=True)
class Spec:
    """The file's fields, parsed; `fail` names the file and the field in one line."""

    path: Path
    raw: dict

    def fail(self, key: str, problem: str) -> BenchmarkError:
        return BenchmarkError(f"task file {self.path.name}: {key}: {problem}")

    def text(self, key: str, default: str | None = None) -> str:
        value = self.raw.get(key, default)
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, "expected a non-empty string" if key in self.raw else "missing")
        return value

    def column(self, key: str) -> str:
        """A column named plainly or as a single `{column}` field."""
        value = self.text(key).strip()
        return value[1:-1] if value.startswith("{") and value.endswith("}") else value


@lru_cache(maxsize=16)
def _load(path: str, digest: str) -> Task:
    import yaml

    file = Path(path)
    try:
        raw = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise BenchmarkError(f"task file {file.name}: not readable YAML ({first_line(exc)})") from None
    if not isinstance(raw, dict):
        raise BenchmarkError(f"task file {file.name}: expected a mapping of keys (task, dataset_path, ...)")
    spec = Spec(file, raw)
    unknown = sorted(set(raw) - set(KEYS))
    if unknown:
        raise spec.fail(unknown[0], f"unknown key; valid keys: {', '.join(KEYS)}")
    for key in REQUIRED:
        if key not in raw:
            raise spec.fail(key, "missing")
    metric = _metric(spec)
    templates = _templates(spec)
    pools = _pools(spec)
    columns = set(pools.train[0]) & set(pools.heldout[0])
    for name, template in templates.items():
        for field in _fields(spec, name, template):
            if field != MASK and field not in columns:
                raise spec.fail("doc_to_text", f"field {{{field}}} is not a column of the data "
                                               f"(columns: {', '.join(sorted(columns))})")
    render = _renderer(spec, metric, columns)
    for split, rows in (("training_split", pools.train), ("test_split", pools.heldout)):
        for i, row in enumerate(rows):
            render(row, "causal" if "causal" in templates else "masked", templates, check=f"{split} row {i}")
    sizes = _sizes(spec, pools)
    return Task(
        name=spec.text("task"), description=raw.get("description") or f"from {file.name}", load_pools=lambda: pools,
        templates={kind: Template(kind, lambda row, kind=kind: render(row, kind, templates), f"task file {file.name}")
                   for kind in templates},
        metric=metric, sizes=sizes, file=str(file), file_sha256=digest)


def _metric(spec: Spec) -> str:
    listed = spec.raw.get("metric_list", [{"metric": "acc"}])
    if not (isinstance(listed, list) and len(listed) == 1 and isinstance(listed[0], dict) and "metric" in listed[0]):
        raise spec.fail("metric_list", "expected one entry: [{metric: acc}] or [{metric: f1}]")
    name = str(listed[0]["metric"])
    if name not in METRICS:
        raise spec.fail("metric_list", f"metric {name!r}: expected acc or f1")
    metric = METRICS[name]
    if metric == "f1" and "doc_to_choice" in spec.raw:
        raise spec.fail("doc_to_choice", "a generation task (f1) has no choices: the target is the answer")
    if metric == "accuracy" and "doc_to_choice" not in spec.raw:
        raise spec.fail("doc_to_choice", "missing (classification scores the choices; f1 for generation)")
    return metric


def _templates(spec: Spec) -> dict[str, str]:
    value = spec.raw["doc_to_text"]
    templates = {"causal": value} if isinstance(value, str) else value
    if not (isinstance(templates, dict) and templates and set(templates) <= {"causal", "masked"}
            and all(isinstance(t, str) and t.strip() for t in templates.values())):
        raise spec.fail("doc_to_text", "expected a template string, or {causal: ..., masked: ...}")
    for kind, template in templates.items():
        masks = _fields(spec, kind, template).count(MASK)
        if (kind == "masked") != (masks == 1) or masks > 1:
            raise spec.fail("doc_to_text", f"{kind}: " + ("a masked-LM template has one {mask} where the choice goes"
                                                          if kind == "masked" else "{mask} is for masked-LM templates"))
    return templates


def _fields(spec: Spec, kind: str, template: str) -> list[str]:
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        raise spec.fail("doc_to_text", f"{kind}: {exc}") from None
    for field in fields:
        if not field or "." in field or "[" in field:
            raise spec.fail("doc_to_text", f"{kind}: {{{field}}}: only {{column}} fields, by name")
    return fields


def _read_local(spec: Spec, key: str, split: str, fmt: str) -> list[Row]:
    import datasets

    files = spec.raw.get("data_files")
    if not isinstance(files, dict) or split not in files:
        raise spec.fail("data_files", f"no file for split {split!r} (local {fmt} data names a file per split)")
    path = spec.path.parent / str(files[split])
    if not path.is_file():
        raise spec.fail(f"data_files.{split}", f"{path} does not exist")
    if path.stat().st_size == 0:
        raise spec.fail(f"data_files.{split}", f"{path} is empty")
    datasets.disable_progress_bars()
    level = datasets.logging.get_verbosity()
    datasets.logging.set_verbosity(datasets.logging.CRITICAL)  # it logs a failed read before raising it
    try:
        rows = list(datasets.load_dataset(fmt, data_files={split: str(path)}, split=split))
    except Exception as exc:  # pyarrow, pandas and datasets raise many types on a malformed file
        raise spec.fail(f"data_files.{split}", f"cannot read {path.name} as {fmt}: {first_line(exc)[:200]}") from None
    finally:
        datasets.logging.set_verbosity(level)
    if not rows:
        raise spec.fail(f"data_files.{split}", f"{path.name} has no rows")
    return rows


def _pools(spec: Spec) -> Pools:
    source = spec.text("dataset_path")
    train, test = spec.text("training_split", "train"), spec.text("test_split", "test")
    if source in LOCAL:
        return Pools(train=_read_local(spec, "training_split", train, source),
                     heldout=_read_local(spec, "test_split", test, source))
    pools = hf_pools(spec.text("task"), source, spec.raw.get("dataset_name"), train, test)
    for key, rows in (("training_split", pools.train), ("test_split", pools.heldout)):
        if not rows:
            raise spec.fail(key, f"{source} split has no rows")
    return pools


def _renderer(spec: Spec, metric: str, columns: set[str]):
    """render(row, kind, templates, check=""): the row as an Example; `check` names the row in errors."""
    target = spec.column("doc_to_target")
    if target not in columns:
        raise spec.fail("doc_to_target", f"{target!r} is not a column of the data (columns: {', '.join(sorted(columns))})")
    delimiter = spec.raw.get("target_delimiter", " ")
    mapping = spec.raw.get("target_map") or {}
    if not isinstance(delimiter, str) or not isinstance(mapping, dict):
        raise spec.fail("target_map" if not isinstance(mapping, dict) else "target_delimiter", "wrong type")
    choice = spec.raw.get("doc_to_choice")
    choice_column = None
    if isinstance(choice, str):
        choice_column = spec.column("doc_to_choice")
        if choice_column not in columns:
            raise spec.fail("doc_to_choice", f"{choice_column!r} is not a column of the data")
    elif choice is not None and not (isinstance(choice, list) and len(choice) >= 2 and all(isinstance(c, (str, int, float))
                                                                                          for c in choice)):
        raise spec.fail("doc_to_choice", "expected a list of at least two label words, or \"{column}\"")

    def gold_of(row: Row, choices: list[str], where: str) -> int:
        value = row[target]
        value = mapping.get(value, mapping.get(str(value), value))
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise spec.fail("doc_to_target", f"{where}: {value!r} is neither an index nor a choice")
        if isinstance(value, int):
            if 0 <= value < len(choices):
                return value
        elif value in choices:
            return choices.index(value)
        raise spec.fail("doc_to_target", f"{where}: gold {row[target]!r} is not one of the candidates "
                                         f"{', '.join(map(str, choices))}" + ("" if mapping else " (target_map?)"))

    def render(row: Row, kind: str, templates: dict[str, str], check: str = "") -> Example:
        where = check or "row"
        text = templates[kind].format_map({**row, MASK: "\0"})
        prompt, _, suffix = text.partition("\0")
        prompt = prompt.rstrip(" ")
        if metric == "f1":
            answers = row[target] if isinstance(row[target], list) else [row[target]]
            answers = [str(a) for a in answers if str(a).strip()]
            if not answers:
                raise spec.fail("doc_to_target", f"{where}: no answer")
            return Example(prompt, (delimiter + answers[0],), 0, suffix, tuple(answers))
        choices = [str(c) for c in (row[choice_column] if choice_column else choice)]
        if len(choices) < 2:
            raise spec.fail("doc_to_choice", f"{where}: fewer than two choices")
        return Example(prompt, tuple(delimiter + c for c in choices), gold_of(row, choices, where), suffix)

    return render


def _sizes(spec: Spec, pools: Pools) -> Sizes:
    given: Any = spec.raw.get("sizes", {})
    if not isinstance(given, dict) or set(given) - {"train", "dev", "test"} or \
            not all(isinstance(v, int) and v > 0 for v in given.values()):
        raise spec.fail("sizes", "expected {train: N, dev: N, test: N} with positive integers")
    default = Sizes()
    train, dev = given.get("train", default.train), given.get("dev", default.dev)
    test = given.get("test", default.test)
    if "train" not in given and "dev" not in given:  # no sizes asked: the train pool split 2:1, at most the defaults
        train, dev = min(train, len(pools.train) * 2 // 3), min(dev, len(pools.train) - len(pools.train) * 2 // 3)
    if "test" not in given:
        test = min(test, len(pools.heldout))
    if train + dev > len(pools.train):
        raise spec.fail("sizes", f"train {train} + dev {dev} > the {len(pools.train)} rows of the training split")
    if test > len(pools.heldout):
        raise spec.fail("sizes", f"test {test} > the {len(pools.heldout)} rows of the test split")
    return Sizes(train, dev, test)
