"""Writes `reviews_train.csv` (400 rows) and `reviews_test.csv` (200 rows) beside this file: short product
reviews of our own making, each with its star rating and sentiment, for the task file `reviews.yaml`.

Sentences are put together from fixed phrase lists with a seeded RNG, so the files are the same on every
run (`python tasks/examples/make_reviews.py`). About a fifth of the reviews turn around mid-way
("I expected ..., but ...") and a few only hint: the label is the second half's sentiment.
"""
import csv
import random
from pathlib import Path

PRODUCTS = ["kettle", "blender", "backpack", "desk lamp", "phone case", "coffee grinder", "rain jacket", "keyboard",
            "toaster", "water bottle", "headphones", "office chair", "tent", "frying pan", "electric toothbrush"]
GOOD = ["works exactly as described", "feels solid and well made", "was worth every penny", "arrived early and intact",
        "has held up for months", "is a joy to use every morning", "does the job quietly", "exceeded what I hoped for",
        "is easy to clean", "looks even better than in the photos"]
BAD = ["stopped working after a week", "feels cheap and flimsy", "was a waste of money", "arrived scratched and dented",
       "broke the second time I used it", "is a pain to use", "makes an awful rattling noise", "fell short of the photos",
       "is impossible to clean", "smells of burnt plastic"]
HINT_GOOD = ["I have already ordered a second one for my sister.", "My whole family uses it now."]
HINT_BAD = ["I sent it back the next day.", "It now lives at the back of a cupboard."]
OPENERS = ["Bought this {product} last month.", "Our old {product} died, so we tried this one.",
           "Gift for my dad.", "Needed a {product} for travel.", ""]


def review(rng: random.Random, product: str, positive: bool) -> str:
    phrases, other = (GOOD, BAD) if positive else (BAD, GOOD)
    opener = rng.choice(OPENERS).format(product=product)
    kind = rng.random()
    if kind < 0.2:  # turnaround: the second half decides
        body = f"I expected it to be one that {rng.choice(other)}, but it {rng.choice(phrases)}."
    elif kind < 0.3:  # a hint only
        body = rng.choice(HINT_GOOD if positive else HINT_BAD)
    else:
        first, second = rng.sample(phrases, 2)
        body = f"It {first} and {second}."
    return f"{opener} {body}".strip()


def rows(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        positive, product = rng.random() < 0.5, rng.choice(PRODUCTS)
        stars = rng.choice([4, 5]) if positive else rng.choice([1, 2])
        out.append({"id": i, "product": product, "review": review(rng, product, positive), "stars": stars,
                    "sentiment": "positive" if positive else "negative"})
    return out


def main() -> None:
    here = Path(__file__).parent
    for name, n, seed in (("reviews_train.csv", 400, 1), ("reviews_test.csv", 200, 2)):
        with open(here / name, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["id", "product", "review", "stars", "sentiment"])
            writer.writeheader()
            writer.writerows(rows(n, seed))
        print(f"wrote {here / name} ({n} rows)")


if __name__ == "__main__":
    main()
