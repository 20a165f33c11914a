"""Candidate scoring: padding-invariant, shared-prompt shortcut exact, logits only where needed."""
import pytest
import torch

from benchmark.models import load_model
from benchmark.scoring import Encoder, answer_loss, candidate_scores, evaluate, generate
from tasks.base import Example
from tasks.metrics import best, token_f1
from tests.helpers import CPU, toy_examples


def naive_scores(model, tokenizer, example):
    """Reference: one unpadded full-logits forward per candidate, mean log-prob of its tokens."""
    prompt = tokenizer(example.prompt).input_ids
    out = []
    for cand in example.candidates:
        toks = tokenizer(cand, add_special_tokens=False).input_ids
        ids = torch.tensor([prompt + toks])
        logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1], -1)
        out.append(torch.stack([logp[len(prompt) - 1 + k, t] for k, t in enumerate(toks)]).mean())
    return torch.stack(out)


def test_batched_scores_match_naive_for_one_and_multi_token_candidates(tiny):
    model = tiny.model.eval()
    examples = toy_examples(3) + [
        Example("Premise: a cat sat. Answer:", (" yes it did", " no", " maybe so"), 0),
        Example("short", (" entailment", " not entailment"), 1),
    ]
    for share in (True, False):
        batch = Encoder(tiny.tokenizer, 512, CPU, share_prompt=share).collate(examples)
        with torch.no_grad():
            scores = candidate_scores(model, batch)
            for i, example in enumerate(examples):
                ref = naive_scores(model, tiny.tokenizer, example)
                torch.testing.assert_close(scores[i, : len(ref)], ref, rtol=1e-4, atol=1e-5)
        assert scores[0, 2] == float("-inf")  # toy examples have 2 candidates, the grid has 3


def test_shared_prompt_uses_one_row_per_example(tiny):
    batch = Encoder(tiny.tokenizer, 512, CPU).collate(toy_examples(4))
    assert batch.input_ids.shape[0] == 4
    assert batch.keep == 2
    batch = Encoder(tiny.tokenizer, 512, CPU, share_prompt=False).collate(toy_examples(4))
    assert batch.input_ids.shape[0] == 8


def test_left_truncation_keeps_the_candidate(tiny):
    example = Example("word " * 100 + "It was", (" terrible", " great"), 1)
    encoder = Encoder(tiny.tokenizer, 16, CPU, share_prompt=False)
    rows, cands, _ = encoder.encode(example)
    assert all(len(r) == 16 for r in rows)
    assert all(rows[j][-len(toks):] == toks for j, toks in cands)


def test_masked_lm_scores_the_label_word_at_the_mask_and_ignores_padding():
    loaded = load_model("tiny-random-roberta", CPU, torch.float32)
    model, tok = loaded.model.eval(), loaded.tokenizer
    examples = [Example("a fine film It was", (" terrible", " great"), 1, suffix="."),
                Example("a long, long, long and tedious film It was", (" terrible", " great"), 0, suffix="."),
                Example("", (" Entity", " Human", " Number"), 2, suffix=": How many legs has a spider ?")]
    batch = Encoder(tok, 512, CPU, masked=True).collate(examples)
    with torch.no_grad():
        scores = candidate_scores(model, batch)
        for i, e in enumerate(examples):  # reference: unpadded full forward, log-softmax at the mask
            ids = [tok.bos_token_id, *tok(e.prompt, add_special_tokens=False).input_ids, tok.mask_token_id,
                   *tok(e.suffix, add_special_tokens=False).input_ids, tok.eos_token_id]
            logp = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0, ids.index(tok.mask_token_id)], -1)
            words = [tok(c, add_special_tokens=False).input_ids[0] for c in e.candidates]
            torch.testing.assert_close(scores[i, : len(words)], logp[words], rtol=1e-4, atol=1e-5)
    assert batch.input_ids.shape[0] == 3 and (batch.input_ids[torch.arange(3), batch.mask_pos] == tok.mask_token_id).all()


def test_answer_loss_is_token_weighted_nll_of_the_answer(tiny):
    model = tiny.model.eval()
    examples = [Example("Question: who? Answer:", (" Denver Broncos\n",), 0, answers=("Denver Broncos",)),
                Example("Q: how many? Answer:", (" 3\n",), 0, answers=("3",))]
    batch = Encoder(tiny.tokenizer, 512, CPU).collate(examples)
    total, count = 0.0, 0
    with torch.no_grad():
        for e in examples:
            ref = naive_scores(model, tiny.tokenizer, e)[0]  # mean log-prob of the answer tokens
            n = len(tiny.tokenizer(e.candidates[0], add_special_tokens=False).input_ids)
            total, count = total - ref.item() * n, count + n
        torch.testing.assert_close(answer_loss(model, batch).item(), total / count, rtol=1e-5, atol=1e-6)


def test_generation_is_greedy_one_line_and_scored_by_f1(tiny):
    encoder = Encoder(tiny.tokenizer, 512, CPU)
    examples = [Example(f"Passage: item {i}.\nQuestion: which?\nAnswer:", (" x\n",), 0, answers=("x",)) for i in range(3)]
    answers = generate(tiny.model.eval(), encoder, examples, batch_size=2, max_new_tokens=8)
    assert len(answers) == 3 and all("\n" not in a for a in answers)
    assert tiny.tokenizer("\n", add_special_tokens=False).input_ids[-1] in encoder.stop_ids()
    one = [generate(tiny.model, encoder, [e], batch_size=1, max_new_tokens=8)[0] for e in examples]
    assert one == answers  # left padding in a batch changes nothing
    scores = evaluate(tiny.model, encoder, examples, 2, generation=True)
    expected = sum(best(token_f1, a, ["x"]) for a in answers) / 3
    assert scores["score"] == pytest.approx(expected) and 0 <= scores["exact_match"] <= scores["score"]
