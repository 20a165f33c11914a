"""A few rows per dataset in its real Hugging Face schema (column names, label encodings, nesting),
written by hand after the hub's dataset cards. Used to test templates and local-file loading."""

ROWS = {
    "sst2": {"sentence": "a gorgeous , witty , seductive movie . ", "label": 1, "idx": 0},
    "sst5": {"text": "a stirring , funny and finally transporting re-imagining of beauty and the beast .",
             "label": 4, "label_text": "very positive"},
    "rte": {"premise": "No Weapons of Mass Destruction Found in Iraq Yet.",
            "hypothesis": "Weapons of Mass Destruction Found in Iraq.", "idx": 0, "label": 1},
    "cb": {"premise": "It was a complex language. Not written down but handed down. One might say it was peeled down.",
           "hypothesis": "the language was peeled down", "idx": 0, "label": 0},
    "boolq": {"question": "do iran and afghanistan speak the same language", "answer": True,
              "passage": "Persian language -- Persian is a pluricentric language."},
    "wsc": {"text": "Mark told Pete many lies about himself, which Pete included in his book. He should have been "
                    "more skeptical.", "span1_index": 0, "span2_index": 13, "span1_text": "Mark", "span2_text": "He",
            "idx": 0, "label": 0},
    "wic": {"word": "place", "sentence1": "Do you want to come over to my place later?",
            "sentence2": "A political system with no place for the less prominent groups.", "start1": 31,
            "start2": 27, "end1": 36, "end2": 32, "idx": 0, "label": 0},
    "multirc": {"paragraph": "While this process moved along, diplomacy continued its rounds.",
                "question": "What did the high-level effort to persuade Pakistan include?",
                "answer": "Children, Gerd, or Dorian Popa", "idx": {"paragraph": 0, "question": 0, "answer": 0},
                "label": 0},
    "copa": {"premise": "My body cast a shadow over the grass.", "choice1": "The sun was rising.",
             "choice2": "The grass was cut.", "question": "cause", "idx": 0, "label": 0},
    "squad": {"id": "56be4db0acb8001400a502ec", "title": "Super_Bowl_50",
              "context": "Super Bowl 50 was an American football game.",
              "question": "Which NFL team represented the AFC at Super Bowl 50? ",
              "answers": {"text": ["Denver Broncos", "Denver Broncos", "the Broncos"], "answer_start": [177, 177, 181]}},
    "drop": {"section_id": "nfl_1184", "query_id": "f37e81fa", "passage": "Hoping to rebound, the Bears flew.",
             "question": "How many field goals did Kris Brown kick?",
             "answers_spans": {"spans": ["3"], "types": ["number"]}},
    "snli": {"premise": "A person on a horse jumps over a broken down airplane.",
             "hypothesis": "A person is training his horse for a competition.", "label": 1},
    "mnli": {"premise": "Conceptually cream skimming has two basic dimensions - product and geography.",
             "hypothesis": "Product and geography are what make cream skimming work. ", "label": 1, "idx": 0},
    "trec": {"text": "How did serfdom develop in and then leave Russia ?", "coarse_label": 2, "fine_label": 26},
}

# (train split, held-out split) as each task loads them from the hub
SPLITS = {
    "sst2": ("train", "validation"), "sst5": ("train", "test"), "rte": ("train", "validation"),
    "cb": ("train", "validation"), "boolq": ("train", "validation"), "wsc": ("train", "validation"),
    "wic": ("train", "validation"), "multirc": ("train", "validation"), "copa": ("train", "validation"),
    "squad": ("train", "validation"), "drop": ("train", "validation"), "snli": ("train", "test"),
    "mnli": ("train", "validation_matched"), "trec": ("train", "test"),
}
