"""Candidate scoring for classification: mean log-probability of each candidate's tokens.

Sequences are left-padded so they all end at the last position, and the LM head runs only over
the last K+1 positions (`logits_to_keep`): on a 49k vocabulary the head over every position costs
about as much as the rest of a small model. When every candidate of an example is a single token
(" terrible" / " great"), the example is one row, the prompt alone, and the candidates are read
off its last position: the same numbers as one row per candidate at half the forward cost.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from tasks.base import Example

# An encoded example: its rows (token ids), and per candidate (row index, token ids)
Encoded = tuple[list[list[int]], list[tuple[int, list[int]]]]


@dataclass
class Batch:
    input_ids: torch.Tensor  # [R, L] left-padded rows
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    keep: int  # logits kept at the last `keep` positions
    cand_row: torch.Tensor  # [N, 1] row of each candidate
    cand_pos: torch.Tensor  # [N, T] kept-logit index predicting each candidate token
    cand_tok: torch.Tensor  # [N, T] candidate token ids
    cand_mask: torch.Tensor  # [N, T] True on real tokens
    slots: torch.Tensor  # [N] flat index into the [B, C] score grid
    gold: torch.Tensor  # [B]
    num_examples: int
    max_candidates: int


class Encoder:
    """Tokenizes examples once (cached) and collates them into left-padded batches."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, max_length: int, device: torch.device,
                 share_prompt: bool = True) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.device = device
        self.share_prompt = share_prompt
        self.pad_id = tokenizer.pad_token_id
        self._cache: dict[Example, Encoded] = {}

    def encode(self, example: Example) -> Encoded:
        if example not in self._cache:
            prompt = self.tokenizer(example.prompt).input_ids
            cands = [self.tokenizer(c, add_special_tokens=False).input_ids for c in example.candidates]
            if self.share_prompt and all(len(c) == 1 for c in cands):
                encoded: Encoded = ([prompt[-self.max_length:]], [(0, c) for c in cands])
            else:  # one row per candidate; truncate the prompt on the left, never the candidate
                rows = [(prompt + c)[-self.max_length:] for c in cands]
                encoded = (rows, [(j, c[-(self.max_length - 1):]) for j, c in enumerate(cands)])
            self._cache[example] = encoded
        return self._cache[example]

    def length(self, example: Example) -> int:
        rows, _ = self.encode(example)
        return max(map(len, rows))

    def collate(self, examples: list[Example]) -> Batch:
        rows: list[list[int]] = []
        cands: list[tuple[int, list[int], bool]] = []  # (row, tokens, tokens are inside the row)
        slots: list[int] = []
        max_c = max(len(e.candidates) for e in examples)
        for i, example in enumerate(examples):
            ex_rows, ex_cands = self.encode(example)
            inside = len(ex_rows) == len(ex_cands)
            for j, (r, toks) in enumerate(ex_cands):
                cands.append((len(rows) + r, toks, inside))
                slots.append(i * max_c + j)
            rows.extend(ex_rows)
        length = max(map(len, rows))
        t = max(len(toks) for _, toks, _ in cands)
        keep = t + 1
        ids = torch.full((len(rows), length), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), length), dtype=torch.long)
        for r, seq in enumerate(rows):
            ids[r, length - len(seq):] = torch.tensor(seq)
            mask[r, length - len(seq):] = 1
        cand_pos = torch.zeros((len(cands), t), dtype=torch.long)
        cand_tok = torch.zeros((len(cands), t), dtype=torch.long)
        cand_mask = torch.zeros((len(cands), t), dtype=torch.bool)
        for c, (_, toks, inside) in enumerate(cands):
            n = len(toks)
            # token k of n is predicted by the logit one position before it; kept index keep-1 is the last position
            last = keep - 2 if inside else keep - 1
            cand_pos[c, :n] = torch.arange(last - n + 1, last + 1)
            cand_tok[c, :n] = torch.tensor(toks)
            cand_mask[c, :n] = True
        to = self.device
        return Batch(
            input_ids=ids.to(to), attention_mask=mask.to(to), position_ids=(mask.cumsum(1) - 1).clamp(min=0).to(to),
            keep=keep, cand_row=torch.tensor([[r] for r, _, _ in cands], device=to), cand_pos=cand_pos.to(to),
            cand_tok=cand_tok.to(to), cand_mask=cand_mask.to(to), slots=torch.tensor(slots, device=to),
            gold=torch.tensor([e.gold for e in examples], device=to), num_examples=len(examples),
            max_candidates=max_c,
        )


def candidate_scores(model: PreTrainedModel, batch: Batch, full_logits: bool = False) -> torch.Tensor:
    """[B, C] mean log-prob of each candidate's tokens; -inf where an example has fewer candidates.
    `full_logits` runs the LM head over every position, as MeZO's released code does (perf baseline)."""
    logits = model(
        input_ids=batch.input_ids, attention_mask=batch.attention_mask, position_ids=batch.position_ids,
        logits_to_keep=0 if full_logits else batch.keep,
    ).logits[:, -batch.keep:]
    # half-precision logits are upcast for the softmax; fp32/fp64 stay as they are
    logp = torch.log_softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)), dim=-1)[batch.cand_row, batch.cand_pos, batch.cand_tok]
    mean = (logp * batch.cand_mask).sum(-1) / batch.cand_mask.sum(-1)
    grid = mean.new_full((batch.num_examples * batch.max_candidates,), float("-inf"))
    return grid.index_put((batch.slots,), mean).view(batch.num_examples, batch.max_candidates)


def classification_loss(model: PreTrainedModel, batch: Batch, full_logits: bool = False) -> torch.Tensor:
    """MeZO's train-as-classification loss: cross-entropy over candidate scores."""
    return F.cross_entropy(candidate_scores(model, batch, full_logits), batch.gold)


@torch.no_grad()
def accuracy(model: PreTrainedModel, encoder: Encoder, examples: list[Example], batch_size: int) -> float:
    """Fraction of examples whose gold candidate scores highest; batches sorted by length (less padding)."""
    ordered = sorted(examples, key=encoder.length)
    correct = 0
    for start in range(0, len(ordered), batch_size):
        batch = encoder.collate(ordered[start:start + batch_size])
        correct += (candidate_scores(model, batch).argmax(-1) == batch.gold).sum().item()
    return correct / len(examples)
