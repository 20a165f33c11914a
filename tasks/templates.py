"""Prompt templates, character for character as the reference code writes them.

Causal LM (OPT, Llama): MeZO's `large_models/templates.py`. MeZO scores the tokens of
`verbalize(sample, c)` beyond `encode(sample).strip(" ")`; here `prompt` is that stripped
encoding and each candidate is the rest of the verbalized text, so prompt + candidate is MeZO's
verbalized string exactly (COPA's " because " becomes prompt "... because" + " he ...").

Masked LM (RoBERTa): LM-BFF's templates (Gao et al. 2021, as MeZO's medium models run them):
`*cls**sent_0*_It_was*mask*.*sep+*` is prompt "<sent> It was", mask, suffix ".". Label words get
a leading space, as LM-BFF tokenizes them (' ' + word, first sub-token).
"""
from __future__ import annotations

from typing import Sequence

from tasks.base import Example, Row, Template

MEZO = "MeZO large_models/templates.py"
LM_BFF = "LM-BFF (Gao et al. 2021) templates, as MeZO medium_models"


def _spaced(words: Sequence[str]) -> tuple[str, ...]:
    return tuple(f" {w}" for w in words)


def _lower_first(s: str) -> str:
    return s[:1].lower() + s[1:]


# ---- causal LM: MeZO -------------------------------------------------------------------------

def _mezo(prompt: str) -> str:
    """MeZO strips spaces (not newlines) off the encoded prompt before tokenizing."""
    return prompt.strip(" ")


def sentiment(words: Sequence[str], column: str = "sentence") -> Template:
    """SST2Template: "<sentence> It was" + " terrible" | " great" (any number of rating words)."""
    return Template("causal", lambda row: Example(
        prompt=f"{row[column].strip()} It was", candidates=_spaced(words), gold=row["label"]), f"{MEZO} SST2Template")


def copa() -> Template:
    """CopaTemplate, capitalization "correct": premise without its final "." + " because "/" so "
    + the choice with a lower-case first word (unless it is "I")."""
    def render(row: Row) -> Example:
        premise = row["premise"].rstrip()
        premise = premise[:-1] if premise.endswith(".") else premise
        conj = {"cause": " because", "effect": " so"}[row["question"]]

        def cap(choice: str) -> str:
            words = choice.split(" ")
            if words[0] != "I":
                words[0] = words[0].lower()
            return " " + " ".join(words)

        return Example(prompt=_mezo(premise + conj), candidates=(cap(row["choice1"]), cap(row["choice2"])), gold=row["label"])

    return Template("causal", render, f"{MEZO} CopaTemplate")


def boolq() -> Template:
    """BoolQTemplateV3 (MeZO's default for BoolQ): "<passage> <Question>?\\n" + "Yes" | "No"."""
    def render(row: Row) -> Example:
        question = row["question"]
        question = question if question.endswith("?") else question + "?"
        question = question[0].upper() + question[1:]
        return Example(prompt=_mezo(f"{row['passage']} {question}\n"), candidates=("Yes", "No"),
                       gold=0 if row["answer"] else 1)

    return Template("causal", render, f"{MEZO} BoolQTemplateV3")


def _promptsource(build, verbalizer: Sequence[str], name: str) -> Template:
    """PromptSource-style templates: a prompt ending in "\\n", the bare label word after it."""
    return Template("causal", lambda row: Example(prompt=_mezo(build(row)), candidates=tuple(verbalizer), gold=row["label"]),
                    f"{MEZO} {name}")


def multirc() -> Template:
    return _promptsource(lambda r: f"{r['paragraph']}\nQuestion: {r['question']}\nI found this answer \"{r['answer']}\". "
                                   "Is that correct? Yes or No?\n", ("No", "Yes"), "MultiRCTemplate")


def cb() -> Template:
    return _promptsource(lambda r: f"Suppose {r['premise']} Can we infer that \"{r['hypothesis']}\"? Yes, No, or Maybe?\n",
                         ("Yes", "No", "Maybe"), "CBTemplate")


def wic() -> Template:
    return _promptsource(lambda r: f"Does the word \"{r['word']}\" have the same meaning in these two sentences? "
                                   f"Yes, No?\n{r['sentence1']}\n{r['sentence2']}\n", ("No", "Yes"), "WICTemplate")


def wsc() -> Template:
    return _promptsource(lambda r: f"{r['text']}\nIn the previous sentence, does the pronoun \"{r['span2_text'].lower()}\" "
                                   f"refer to {r['span1_text']}? Yes or No?\n", ("No", "Yes"), "WSCTemplate")


def rte() -> Template:
    return _promptsource(lambda r: f"{r['premise']}\nDoes this mean that \"{r['hypothesis']}\" is true? Yes or No?\n",
                         ("Yes", "No"), "RTETemplate")


def _qa(build, name: str) -> Template:
    """Generation: the prompt ends in "Answer:"; training target " <first answer>\\n"; scored against all answers."""
    def render(row: Row) -> Example:
        prompt, answers = build(row)
        return Example(prompt=_mezo(prompt), candidates=(f" {answers[0]}\n",), gold=0, answers=tuple(answers))

    return Template("causal", render, f"{MEZO} {name}")


def squad() -> Template:
    return _qa(lambda r: (f"Title: {r['title']}\nContext: {r['context']}\nQuestion: {r['question'].strip()}\nAnswer:",
                          r["answers"]["text"]), "SQuADv2Template")


def drop() -> Template:
    return _qa(lambda r: (f"Passage: {r['passage']}\nQuestion: {r['question'].strip()}\nAnswer:",
                          r["answers_spans"]["spans"]), "DROPTemplate")


# ---- causal LM: ours, for the offline tasks --------------------------------------------------

def review(words: Sequence[str], column: str = "sentence") -> Template:
    """An instruction-style alternative to MeZO's "It was": "Review: <s>\nSentiment:" + " negative" | ..."""
    return Template("causal", lambda row: Example(
        prompt=f"Review: {row[column].strip()}\nSentiment:", candidates=_spaced(words), gold=row["label"]), "ours")


def topic(words: Sequence[str]) -> Template:
    """News topic: "<title>\n<lead paragraph>\nTopic:" + " business" | ... (the lead keeps CPU runs short)."""
    return Template("causal", lambda row: Example(
        prompt=f"{row['title']}\n{row['lead']}\nTopic:", candidates=_spaced(words), gold=row["label"]), "ours")


# ---- masked LM: LM-BFF -----------------------------------------------------------------------

def masked_sentiment(words: Sequence[str], column: str = "sentence") -> Template:
    """SST-2/SST-5: *cls**sent_0*_It_was*mask*.*sep+*"""
    return Template("masked", lambda row: Example(
        prompt=f"{row[column].strip()} It was", suffix=".", candidates=_spaced(words), gold=row["label"]),
        f"{LM_BFF} *cls**sent_0*_It_was*mask*.*sep+*")


def masked_entailment(words: Sequence[str], first: str = "premise", second: str = "hypothesis") -> Template:
    """MNLI/SNLI/RTE: *cls**sent-_0*?*mask*,*+sentl_1**sep+* (last char of s0 dropped, s1 lower-cased first)."""
    return Template("masked", lambda row: Example(
        prompt=f"{row[first].strip()[:-1]}?", suffix=f", {_lower_first(row[second].strip())}",
        candidates=_spaced(words), gold=row["label"]), f"{LM_BFF} *cls**sent-_0*?*mask*,*+sentl_1**sep+*")


def masked_label_first(words: Sequence[str], column: str = "text", label: str = "label") -> Template:
    """TREC: *cls**mask*:*+sent_0**sep+* (the label word, then the text)."""
    return Template("masked", lambda row: Example(
        prompt="", suffix=f": {row[column].strip()}", candidates=_spaced(words), gold=row[label]),
        f"{LM_BFF} *cls**mask*:*+sent_0**sep+*")
