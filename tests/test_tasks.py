"""Every task of the paper: reference templates character for character, hub schemas read from
local files, sizes, the k-shot sampler, and SQuAD's F1/EM."""
import collections
import json

import pytest

from benchmark.core.errors import BenchmarkError
from tasks.base import Example
from tasks.metrics import best, exact_match, normalize_answer, token_f1
from tasks.registry import TASKS
from tasks.sampling import sample_splits
from tests.hf_rows import ROWS, SPLITS

SST5 = (" terrible", " bad", " okay", " good", " great")
# (task, template) -> the example its fixture row must render to, written out by hand
EXPECTED = {
    ("sst2", "mezo"): Example("a gorgeous , witty , seductive movie . It was", (" terrible", " great"), 1),
    ("sst2", "lm-bff"): Example("a gorgeous , witty , seductive movie . It was", (" terrible", " great"), 1, suffix="."),
    ("sst5", "lm-bff"): Example("a stirring , funny and finally transporting re-imagining of beauty and the beast . "
                                "It was", SST5, 4, suffix="."),
    ("rte", "mezo"): Example('No Weapons of Mass Destruction Found in Iraq Yet.\nDoes this mean that "Weapons of Mass '
                             'Destruction Found in Iraq." is true? Yes or No?\n', ("Yes", "No"), 1),
    ("rte", "lm-bff"): Example("No Weapons of Mass Destruction Found in Iraq Yet?", (" Yes", " No"), 1,
                               suffix=", weapons of Mass Destruction Found in Iraq."),
    ("cb", "mezo"): Example('Suppose It was a complex language. Not written down but handed down. One might say it was '
                            'peeled down. Can we infer that "the language was peeled down"? Yes, No, or Maybe?\n',
                            ("Yes", "No", "Maybe"), 0),
    ("boolq", "mezo"): Example("Persian language -- Persian is a pluricentric language. Do iran and afghanistan speak "
                               "the same language?\n", ("Yes", "No"), 0),
    ("wsc", "mezo"): Example("Mark told Pete many lies about himself, which Pete included in his book. He should have "
                             'been more skeptical.\nIn the previous sentence, does the pronoun "he" refer to Mark? Yes '
                             "or No?\n", ("No", "Yes"), 0),
    ("wic", "mezo"): Example('Does the word "place" have the same meaning in these two sentences? Yes, No?\nDo you want '
                             "to come over to my place later?\nA political system with no place for the less prominent "
                             "groups.\n", ("No", "Yes"), 0),
    ("multirc", "mezo"): Example("While this process moved along, diplomacy continued its rounds.\nQuestion: What did "
                                 "the high-level effort to persuade Pakistan include?\nI found this answer \"Children, "
                                 'Gerd, or Dorian Popa". Is that correct? Yes or No?\n', ("No", "Yes"), 0),
    ("copa", "mezo"): Example("My body cast a shadow over the grass because",
                              (" the sun was rising.", " the grass was cut."), 0),
    ("squad", "mezo"): Example("Title: Super_Bowl_50\nContext: Super Bowl 50 was an American football game.\nQuestion: "
                               "Which NFL team represented the AFC at Super Bowl 50?\nAnswer:", (" Denver Broncos\n",), 0,
                               answers=("Denver Broncos", "Denver Broncos", "the Broncos")),
    ("drop", "mezo"): Example("Passage: Hoping to rebound, the Bears flew.\nQuestion: How many field goals did Kris "
                              "Brown kick?\nAnswer:", (" 3\n",), 0, answers=("3",)),
    ("snli", "lm-bff"): Example("A person on a horse jumps over a broken down airplane?", (" Yes", " Maybe", " No"), 1,
                                suffix=", a person is training his horse for a competition."),
    ("mnli", "lm-bff"): Example("Conceptually cream skimming has two basic dimensions - product and geography?",
                                (" Yes", " Maybe", " No"), 1,
                                suffix=", product and geography are what make cream skimming work."),
    ("trec", "lm-bff"): Example("", (" Expression", " Entity", " Description", " Human", " Location", " Number"), 2,
                                suffix=": How did serfdom develop in and then leave Russia ?"),
}


@pytest.mark.parametrize("task,template", sorted(EXPECTED))
def test_templates_match_the_reference_character_for_character(task, template):
    assert TASKS.get(task).templates[template].render(ROWS[task]) == EXPECTED[(task, template)]


def test_every_paper_column_is_a_registered_task_with_the_right_model_kinds():
    causal = ["sst2", "rte", "cb", "boolq", "wsc", "wic", "multirc", "squad", "drop", "copa"]  # Tables 4, 5, 12, 13
    masked = ["sst2", "sst5", "snli", "mnli", "rte", "trec"]  # Table 3 (RoBERTa-large)
    for name in causal:
        assert TASKS.get(name).template("causal")[1].source.startswith("MeZO")
    for name in masked:
        assert TASKS.get(name).template("masked")[1].source.startswith("LM-BFF")
    assert [n for n in causal if TASKS.get(n).generation] == ["squad", "drop"]
    with pytest.raises(BenchmarkError, match="no prompt for masked LMs"):
        TASKS.get("squad").template("masked")
    with pytest.raises(BenchmarkError, match="no causal-LM template 'lm-bff'"):
        TASKS.get("sst2").template("causal", "lm-bff")


def _write_local(root, task: str, counts: tuple[int, int]) -> None:
    """`counts` rows per split of the task's fixture row, each made distinct (and labels cycled)."""
    folder = root / task
    folder.mkdir(parents=True)
    for split, n in zip(SPLITS[task], counts):
        rows = []
        for i in range(n):
            row = json.loads(json.dumps(ROWS[task]))
            text_key = next(k for k in ("sentence", "text", "premise", "question", "passage", "sentence1") if k in row)
            row[text_key] = f"{split} {i}: {row[text_key]}"
            if "label" in row and task != "trec":
                row["label"] = i % (3 if task in ("cb", "snli", "mnli") else 5 if task == "sst5" else 2)
            rows.append(row)
        (folder / f"{split}.jsonl").write_text("\n".join(json.dumps(r) for r in rows))


@pytest.mark.parametrize("task", sorted(SPLITS))
def test_hub_schema_loads_from_local_files_and_renders(task, tmp_path, monkeypatch):
    _write_local(tmp_path, task, (12, 5))
    monkeypatch.setenv("ZOBENCH_DATA_DIR", str(tmp_path))
    pools = TASKS.get(task).load_pools()
    assert (len(pools.train), len(pools.heldout)) == (12, 5)
    for name, template in TASKS.get(task).templates.items():
        example = template.render(pools.heldout[0])
        assert 0 <= example.gold < len(example.candidates)
        assert SPLITS[task][1] in (example.prompt + example.suffix).lower()  # the held-out row, not a train row


@pytest.mark.parametrize("task,pool,expected", [("cb", (250, 56), (150, 100, 56)), ("wsc", (554, 104), (454, 100, 104)),
                                                ("copa", (400, 100), (300, 100, 100))])
def test_small_train_sets_have_explicit_sizes(task, pool, expected, tmp_path, monkeypatch):
    _write_local(tmp_path, task, pool)
    monkeypatch.setenv("ZOBENCH_DATA_DIR", str(tmp_path))
    t = TASKS.get(task)
    splits = sample_splits(t, t.template("causal")[1].render, 0)
    assert (len(splits.train), len(splits.dev), len(splits.test)) == expected
    with pytest.raises(BenchmarkError, match="fewer than num_train"):  # asking for MeZO's 1000 is an error
        sample_splits(t, t.template("causal")[1].render, 0, 1000, 100)


def test_sampling_is_deterministic_and_dev_never_meets_test(tmp_path, monkeypatch):
    _write_local(tmp_path, "rte", (300, 80))
    monkeypatch.setenv("ZOBENCH_DATA_DIR", str(tmp_path))
    task = TASKS.get("rte")
    render = task.templates["mezo"].render
    a, b, c = (sample_splits(task, render, s, 100, 50, 60) for s in (0, 0, 1))
    assert a == b and a.train != c.train and a.test == c.test
    prompts = [{e.prompt for e in s} for s in (a.train, a.dev, a.test)]
    assert all(len(p) == n for p, n in zip(prompts, (100, 50, 60)))
    assert not (prompts[0] & prompts[1]) and not (prompts[1] & prompts[2]) and not (prompts[0] & prompts[2])


@pytest.mark.parametrize("task,k", [("rt-polarity", 16), ("rt-5way", 16), ("bbc-news", 16), ("rt-polarity", 512)])
@pytest.mark.slow
def test_k_shot_gives_exactly_k_per_class_for_train_and_dev(task, k):
    t = TASKS.get(task)
    render = t.template("masked")[1].render
    a = sample_splits(t, render, 13, k=k)
    classes = len(a.train[0].candidates)
    for split in (a.train, a.dev):
        assert collections.Counter(e.gold for e in split) == {c: k for c in range(classes)}
    assert not ({e.prompt + e.suffix for e in a.train} & {e.prompt + e.suffix for e in a.dev})
    b, c = sample_splits(t, render, 13, k=k), sample_splits(t, render, 21, k=k)
    assert a == b and a.train != c.train and a.test == c.test


def test_k_shot_short_of_rows_is_an_error():
    t = TASKS.get("bbc-news")
    with pytest.raises(BenchmarkError, match="k=512 needs 1024 train-pool rows per class"):
        sample_splits(t, t.templates["topic"].render, 13, k=512)


def test_offline_tasks_are_the_real_corpora():
    five = TASKS.get("rt-5way").load_pools()
    counts = collections.Counter(r["label"] for r in five.train + five.heldout)
    assert sum(counts.values()) == 10_603 and len(counts) == 5 and min(counts.values()) > 900
    bbc = TASKS.get("bbc-news").load_pools()
    assert len(bbc.train) + len(bbc.heldout) == 2_092  # 2,225 files, 133 repeated bodies dropped
    assert collections.Counter(r["topic"] for r in bbc.train + bbc.heldout)["sports"] > 400
    assert not {r["text"] for r in bbc.train} & {r["text"] for r in bbc.heldout}


@pytest.mark.parametrize("prediction,golds,f1,em", [
    ("the Denver Broncos", ["Denver Broncos"], 1.0, 1.0),  # articles dropped
    ("Denver", ["Denver Broncos"], 2 / 3, 0.0),  # precision 1, recall 1/2
    ("Broncos", ["Denver Broncos", "the Broncos"], 1.0, 1.0),  # max over golds
    ("3.", ["3"], 1.0, 1.0),  # punctuation dropped
    ("An apple, a pear!", ["apple pear"], 1.0, 1.0),
    ("cat cat", ["cat"], 2 / 3, 0.0),  # repeated tokens count once each: precision 1/2
    ("reimagining", ["re-imagining"], 1.0, 1.0),  # hyphen removed, words not split
    ("", ["Denver"], 0.0, 0.0),
    ("The", ["a"], 1.0, 1.0),  # both normalise to empty
    ("Denver  Broncos\t", ["denver broncos"], 1.0, 1.0),
])
def test_squad_f1_and_exact_match(prediction, golds, f1, em):
    assert best(token_f1, prediction, golds) == pytest.approx(f1)
    assert best(exact_match, prediction, golds) == em


def test_normalize_answer_is_squads():
    assert normalize_answer("  The Quick, brown fox -- an  example! ") == "quick brown fox example"


@pytest.mark.parametrize("damage,message", [
    (lambda folder: (folder / "validation.jsonl").unlink(), r"task rte: missing .*validation.jsonl"),
    (lambda folder: (folder / "train.jsonl").write_text('{"premise": "cut off'), "cannot read the JSON-lines files"),
    (lambda folder: (folder / "train.jsonl").write_text(""), "cannot read the JSON-lines files"),
])
def test_broken_local_files_give_one_clear_error(damage, message, tmp_path, monkeypatch):
    _write_local(tmp_path, "rte", (30, 10))
    damage(tmp_path / "rte")
    monkeypatch.setenv("ZOBENCH_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    task = TASKS.get("rte")
    with pytest.raises(BenchmarkError, match=message):
        sample_splits(task, task.templates["mezo"].render, 0, 10, 5)
