"""`benchmark show-task`: rendered prompts with candidates and gold, to check a template by eye."""
from __future__ import annotations

from benchmark.core.errors import BenchmarkError
from tasks.base import KINDS, Example, Kind
from tasks.registry import TASKS
from tasks.sampling import sample_splits

MASK = "<mask>"


def format_example(example: Example, kind: Kind) -> str:
    text = example.prompt + MASK + example.suffix if kind == "masked" else example.prompt
    marks = [f"{'*' if j == example.gold else ' '} {c!r}" for j, c in enumerate(example.candidates)]
    lines = [text, "candidates (* gold): " + "  ".join(marks)]
    if example.answers:
        lines.append(f"gold answers: {list(example.answers)!r}")
    return "\n".join(lines)


def show_task(name: str, n: int = 3, template: str | None = None, kind: Kind = "causal", split: str = "test",
              seed: int = 0) -> str:
    if split not in ("train", "dev", "test"):
        raise BenchmarkError(f"--split {split!r}: expected train, dev or test")
    task = TASKS.get(name)
    template_name, chosen = task.template(kind, template)
    defaults = {k: next((n for n, t in task.templates.items() if t.kind == k), None) for k in KINDS}
    listing = "; ".join(f"{n} ({t.kind}{', default' if defaults[t.kind] == n else ''}): {t.source}"
                        for n, t in task.templates.items())
    s = task.sizes
    head = [f"{task.name}: {task.description}", f"metric: {task.metric}; sizes: train {s.train}, dev {s.dev}, "
            f"test {s.test} (or the whole held-out pool if smaller)", f"templates: {listing}",
            f"showing {n} {split} examples of template {template_name} ({kind} LM), seed {seed}"]
    splits = sample_splits(task, chosen.render, seed, num_test=n) if split == "test" else \
        sample_splits(task, chosen.render, seed)
    examples = getattr(splits, split)[:n]
    body = [f"--- {split} example {i + 1} ---\n{format_example(e, kind)}" for i, e in enumerate(examples)]
    return "\n".join(head) + "\n\n" + "\n\n".join(body)
