"""Scoring: candidates by mean log-probability (classification), greedy decoding (generation).

Causal LMs: sequences are left-padded so they all end at the last position, and the LM head runs
only over the last K+1 positions (`logits_to_keep`): on a 49k vocabulary the head over every
position costs about as much as the rest of a small model. When every candidate of an example is
a single token (" terrible" / " great"), the example is one row, the prompt alone, and the
candidates are read off its last position: the same numbers as one row per candidate at half the
forward cost. Masked LMs (LM-BFF): one row "<cls> prompt <mask> suffix <sep>"; each candidate is
its first sub-token, read at the mask, and the LM head runs at the mask position only.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import torch
import torch.nn.functional as F

if TYPE_CHECKING:  # a model in hand means transformers is loaded; the CLI checks arguments without it
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

from benchmark.core.errors import BenchmarkError
from tasks.base import Example
from tasks.metrics import best, exact_match, token_f1

MAX_NEW_TOKENS = 50  # MeZO's generation budget for SQuAD and DROP


class Encoded(NamedTuple):
    rows: list[list[int]]  # token ids of each row
    cands: list[tuple[int, list[int]]]  # per candidate: (row index, its token ids)
    mask_at: int | None = None  # masked LM: index of the mask token in the (single) row


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
    is_gold: torch.Tensor  # [N] True for each example's gold candidate
    gold: torch.Tensor  # [B]
    num_examples: int
    max_candidates: int
    mask_pos: torch.Tensor | None = None  # [R] masked LM: the mask's position in each row

    def repeat(self, n: int) -> "Batch":
        """`n` stacked copies of the batch (rows, candidates, examples): one forward that scores `n` weight
        variants at once, copy k's rows at [k R, (k + 1) R) (the ZO engine's dual forward)."""
        rows, grid = self.input_ids.shape[0], self.num_examples * self.max_candidates
        shift = torch.arange(n, device=self.slots.device).repeat_interleave(len(self.slots))
        return Batch(
            input_ids=self.input_ids.repeat(n, 1), attention_mask=self.attention_mask.repeat(n, 1),
            position_ids=self.position_ids.repeat(n, 1), keep=self.keep,
            cand_row=self.cand_row.repeat(n, 1) + (shift * rows).unsqueeze(1), cand_pos=self.cand_pos.repeat(n, 1),
            cand_tok=self.cand_tok.repeat(n, 1), cand_mask=self.cand_mask.repeat(n, 1),
            slots=self.slots.repeat(n) + shift * grid, is_gold=self.is_gold.repeat(n), gold=self.gold.repeat(n),
            num_examples=self.num_examples * n, max_candidates=self.max_candidates,
            mask_pos=None if self.mask_pos is None else self.mask_pos.repeat(n),
        )


class Encoder:
    """Tokenizes examples once (cached) and collates them into left-padded batches."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, max_length: int, device: torch.device,
                 share_prompt: bool = True, masked: bool = False) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.device = device
        self.share_prompt = share_prompt
        self.masked = masked
        self.pad_id = tokenizer.pad_token_id
        self._cache: dict[Example, Encoded] = {}
        self._stops: list[int] | None = None

    def _tokens(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False).input_ids if text else []

    def encode(self, example: Example) -> Encoded:
        if example not in self._cache:
            self._cache[example] = self._encode_masked(example) if self.masked else self._encode_causal(example)
        return self._cache[example]

    def _encode_causal(self, example: Example) -> Encoded:
        prompt = self.tokenizer(example.prompt).input_ids
        cands = [self._tokens(c) for c in example.candidates]
        if self.share_prompt and all(len(c) == 1 for c in cands):
            return Encoded([prompt[-self.max_length:]], [(0, c) for c in cands])
        # one row per candidate; truncate the prompt on the left, never the candidate
        rows = [(prompt + c)[-self.max_length:] for c in cands]
        return Encoded(rows, [(j, c[-(self.max_length - 1):]) for j, c in enumerate(cands)])

    def _encode_masked(self, example: Example) -> Encoded:
        tok = self.tokenizer
        prompt, suffix = self._tokens(example.prompt), self._tokens(example.suffix)
        over = len(prompt) + len(suffix) + 3 - self.max_length  # + cls, mask, sep
        if over > 0:  # trim the suffix's tail first, then the prompt's head
            cut = min(over, len(suffix))
            suffix, prompt = suffix[:len(suffix) - cut], prompt[over - cut:]
        words = [self._tokens(c)[:1] for c in example.candidates]  # LM-BFF: first sub-token of " word"
        if len({tuple(w) for w in words}) < len(words):
            raise BenchmarkError(f"label words {example.candidates} share a first token in this tokenizer")
        cls = tok.cls_token_id if tok.cls_token_id is not None else tok.bos_token_id
        sep = tok.sep_token_id if tok.sep_token_id is not None else tok.eos_token_id
        row = [cls, *prompt, tok.mask_token_id, *suffix, sep]
        return Encoded([row], [(0, w) for w in words], mask_at=1 + len(prompt))

    def length(self, example: Example) -> int:
        return max(map(len, self.encode(example).rows))

    def _pad(self, rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        length = max(map(len, rows))
        ids = torch.full((len(rows), length), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), length), dtype=torch.long)
        for r, seq in enumerate(rows):
            ids[r, length - len(seq):] = torch.tensor(seq)
            mask[r, length - len(seq):] = 1
        return ids, mask

    def collate(self, examples: list[Example]) -> Batch:
        rows: list[list[int]] = []
        cands: list[tuple[int, list[int], bool]] = []  # (row, tokens, tokens are inside the row)
        slots: list[int] = []
        is_gold: list[bool] = []
        mask_at: list[int] = []
        max_c = max(len(e.candidates) for e in examples)
        for i, example in enumerate(examples):
            enc = self.encode(example)
            inside = len(enc.rows) == len(enc.cands)
            for j, (r, toks) in enumerate(enc.cands):
                cands.append((len(rows) + r, toks, inside))
                slots.append(i * max_c + j)
                is_gold.append(j == example.gold)
            rows.extend(enc.rows)
            if enc.mask_at is not None:
                mask_at.append(enc.mask_at - len(enc.rows[0]))  # from the row's end: padding-proof
        ids, mask = self._pad(rows)
        t = max(len(toks) for _, toks, _ in cands)
        keep = t + 1
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
        if self.masked:  # one logit row per example, at the mask
            keep, cand_pos = 1, torch.zeros_like(cand_pos)
        to = self.device
        return Batch(
            input_ids=ids.to(to), attention_mask=mask.to(to), position_ids=(mask.cumsum(1) - 1).clamp(min=0).to(to),
            keep=keep, cand_row=torch.tensor([[r] for r, _, _ in cands], device=to), cand_pos=cand_pos.to(to),
            cand_tok=cand_tok.to(to), cand_mask=cand_mask.to(to), slots=torch.tensor(slots, device=to),
            is_gold=torch.tensor(is_gold, device=to), gold=torch.tensor([e.gold for e in examples], device=to),
            num_examples=len(examples), max_candidates=max_c, mask_pos=(torch.tensor(mask_at) + ids.shape[1]).to(to) if self.masked else None,
        )

    def prompts(self, examples: list[Example], room: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Left-padded prompts alone (for generation), each cut on the left to leave `room` new tokens."""
        keep = max(self.max_length - room, 1)
        ids, mask = self._pad([self.tokenizer(e.prompt).input_ids[-keep:] for e in examples])
        return ids.to(self.device), mask.to(self.device)

    def stop_ids(self) -> list[int]:
        """Every token whose text contains a newline, and EOS: decoding stops at the end of the line."""
        if self._stops is None:
            vocab = self.tokenizer.batch_decode([[i] for i in range(len(self.tokenizer))])
            self._stops = [i for i, s in enumerate(vocab) if "\n" in s] + [self.tokenizer.eos_token_id]
        return self._stops


def _logits(model: PreTrainedModel, batch: Batch, full_logits: bool) -> torch.Tensor:
    """[R, keep, V] logits where candidates are read. No KV cache: scoring never decodes, and the cache
    is a copy of every layer's keys and values (35 of the 54 MB a SmolLM2 batch of 16 adds, measured)."""
    if batch.mask_pos is not None:
        hidden = model.base_model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).last_hidden_state
        rows = torch.arange(hidden.shape[0], device=hidden.device)
        return model.lm_head(hidden[rows, batch.mask_pos]).unsqueeze(1)
    return model(
        input_ids=batch.input_ids, attention_mask=batch.attention_mask, position_ids=batch.position_ids,
        logits_to_keep=0 if full_logits else batch.keep, use_cache=False,
    ).logits[:, -batch.keep:]


def _candidate_logprobs(model: PreTrainedModel, batch: Batch, full_logits: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Per candidate: (sum of its tokens' log-probs [N], its token count [N])."""
    logits = _logits(model, batch, full_logits)
    # half-precision logits are upcast for the softmax; fp32/fp64 stay as they are
    logp = torch.log_softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)), dim=-1)
    picked = logp[batch.cand_row, batch.cand_pos, batch.cand_tok]
    return (picked * batch.cand_mask).sum(-1), batch.cand_mask.sum(-1)


def candidate_scores(model: PreTrainedModel, batch: Batch, full_logits: bool = False) -> torch.Tensor:
    """[B, C] mean log-prob of each candidate's tokens; -inf where an example has fewer candidates.
    `full_logits` runs the LM head over every position, as MeZO's released code does (perf baseline)."""
    total, count = _candidate_logprobs(model, batch, full_logits)
    grid = total.new_full((batch.num_examples * batch.max_candidates,), float("-inf"))
    return grid.index_put((batch.slots,), total / count).view(batch.num_examples, batch.max_candidates)


def classification_loss(model: PreTrainedModel, batch: Batch, full_logits: bool = False) -> torch.Tensor:
    """MeZO's train-as-classification loss: cross-entropy over candidate scores."""
    return F.cross_entropy(candidate_scores(model, batch, full_logits), batch.gold)


def answer_loss(model: PreTrainedModel, batch: Batch) -> torch.Tensor:
    """Generation tasks: language-modelling loss on the gold answer's tokens (" answer\\n"), token-weighted."""
    total, count = _candidate_logprobs(model, batch, False)
    return -total[batch.is_gold].sum() / count[batch.is_gold].sum()


def classification_losses(model: PreTrainedModel, batch: Batch, copies: int) -> torch.Tensor:
    """[copies] `classification_loss` of each of `copies` stacked copies of the batch, in one forward."""
    scores = candidate_scores(model, batch.repeat(copies))
    return F.cross_entropy(scores, batch.gold.repeat(copies), reduction="none").view(copies, -1).mean(1)


def answer_losses(model: PreTrainedModel, batch: Batch, copies: int) -> torch.Tensor:
    """[copies] `answer_loss` of each of `copies` stacked copies of the batch, in one forward."""
    total, count = _candidate_logprobs(model, batch.repeat(copies), False)
    gold = batch.is_gold.repeat(copies).view(copies, -1)
    return -(total.view(copies, -1) * gold).sum(1) / (count.view(copies, -1) * gold).sum(1)


@torch.no_grad()
def accuracy(model: PreTrainedModel, encoder: Encoder, examples: list[Example], batch_size: int) -> float:
    """Fraction of examples whose gold candidate scores highest; batches sorted by length (less padding)."""
    ordered = sorted(examples, key=encoder.length)
    correct = 0
    for start in range(0, len(ordered), batch_size):
        batch = encoder.collate(ordered[start:start + batch_size])
        correct += (candidate_scores(model, batch).argmax(-1) == batch.gold).sum().item()
    return correct / len(examples)


@torch.no_grad()
def generate(model: PreTrainedModel, encoder: Encoder, examples: list[Example], batch_size: int,
             max_new_tokens: int = MAX_NEW_TOKENS) -> list[str]:
    """Greedy answers, cut at the first newline, in the order of `examples`."""
    from transformers import GenerationConfig

    config = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=encoder.stop_ids(),
                              pad_token_id=encoder.pad_id)
    order = sorted(range(len(examples)), key=lambda i: len(examples[i].prompt))
    out: list[str] = [""] * len(examples)
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        ids, mask = encoder.prompts([examples[i] for i in chunk], max_new_tokens)
        new = model.generate(input_ids=ids, attention_mask=mask, generation_config=config)[:, ids.shape[1]:]
        for i, text in zip(chunk, encoder.tokenizer.batch_decode(new, skip_special_tokens=True)):
            out[i] = text.split("\n", 1)[0].strip()
    return out


def evaluate(model: PreTrainedModel, encoder: Encoder, examples: list[Example], batch_size: int,
             generation: bool) -> dict[str, float]:
    """{"score": accuracy} for classification; {"score": F1, "exact_match": EM} (means, max over golds) for generation."""
    if not generation:
        return {"score": accuracy(model, encoder, examples, batch_size)}
    answers = generate(model, encoder, examples, batch_size)
    n = len(examples)
    return {"score": sum(best(token_f1, a, e.answers) for a, e in zip(answers, examples)) / n,
            "exact_match": sum(best(exact_match, a, e.answers) for a, e in zip(answers, examples)) / n}


@dataclass
class BatchLoss:
    """One training batch's loss as a method sees it (`methods.base.LossFn`): cross-entropy over the
    candidate scores, or for generation the answer's LM loss; `copies(n)` scores n stacked copies at once."""

    model: PreTrainedModel
    batch: Batch
    generation: bool = False
    full_logits: bool = False  # the LM head over every position (perf's MeZO-reference baseline only)

    def __call__(self) -> torch.Tensor:
        if self.generation:
            return answer_loss(self.model, self.batch)
        return classification_loss(self.model, self.batch, self.full_logits)

    def copies(self, n: int) -> torch.Tensor:
        if self.generation:
            return answer_losses(self.model, self.batch, n)
        return classification_losses(self.model, self.batch, n)
