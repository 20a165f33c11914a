import pytest
import torch

from benchmark.models import LoadedModel, load_model
from tasks.base import Example, Pools, Task, Template

CPU = torch.device("cpu")


@pytest.fixture
def tiny() -> LoadedModel:
    return load_model("tiny-random-llama", CPU, torch.float32)


def toy_examples(n: int, offset: int = 0) -> list[Example]:
    """Sentiment-like examples with one-token candidates and a learnable rule (parity of a word)."""
    words = ["good", "bad", "fine", "awful", "nice", "poor"]
    return [
        Example(prompt=f"review {i}: {words[i % 6]} movie. It was", candidates=(" terrible", " great"),
                gold=int(words[i % 6] in ("good", "fine", "nice")))
        for i in range(offset, offset + n)
    ]


def toy_render(row: dict) -> Example:
    return toy_examples(1, row["i"])[0]


def toy_task(n_train: int = 200, n_heldout: int = 100) -> Task:
    rows = [{"i": i} for i in range(n_train + n_heldout)]
    return Task(
        name="toy", description="synthetic",
        load_pools=lambda: Pools(train=rows[:n_train], heldout=rows[n_train:]),
        templates={"toy": Template("causal", toy_render, "tests")},
    )
