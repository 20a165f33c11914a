"""Candidate scoring: padding-invariant, shared-prompt shortcut exact, logits only where needed."""
import torch

from benchmark.scoring import Encoder, candidate_scores
from tasks.base import Example
from tests.conftest import CPU, toy_examples


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
