"""Beam search over any step function, vectorised over the live hypotheses; greedy decoding is beam size 1.

`step(tokens, state)` takes the last token of each live hypothesis, (k,) int64, and the state gathered for them,
and returns `(log_probs (k, V), alpha (k, P) or None, new_state)`. States are tensors (or tuples of tensors) whose
first dimension indexes the hypotheses; they are reordered with `index_select` after each step.

Scores are sums of log-probabilities; finished hypotheses are ranked by `score / length ** length_penalty`
(length counts generated tokens, the end token included), so longer captions are not penalised merely for being
longer. `no_repeat_ngram` forbids any token that would complete a word n-gram already present in the hypothesis,
and `once` lists tokens that may appear at most once: the guards against the seed's "a man in a blue shirt and a
blue shirt".
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

State = torch.Tensor | tuple


@dataclass
class Hypothesis:
    tokens: list[int]  # generated tokens, end token excluded
    score: float  # sum of log-probabilities, end token included
    normalised: float
    alphas: list[torch.Tensor]  # one (P,) attention map per generated token (end token excluded)


def _select(state: State, index: torch.Tensor) -> State:
    if isinstance(state, tuple):
        return tuple(_select(s, index) for s in state)
    return state.index_select(0, index)


def banned_tokens(tokens: list[int], n: int) -> set[int]:
    """Tokens that would complete an n-gram already present in `tokens`."""
    if n <= 0 or len(tokens) < n - 1:
        return set()
    prefix = tuple(tokens[len(tokens) - n + 1 :]) if n > 1 else ()
    return {tokens[i + n - 1] for i in range(len(tokens) - n + 1) if tuple(tokens[i : i + n - 1]) == prefix}


def beam_search(
    step: Callable[[torch.Tensor, State], tuple[torch.Tensor, torch.Tensor | None, State]],
    state: State,
    *,
    sos: int,
    eos: int,
    beam_size: int = 3,
    max_len: int = 30,
    length_penalty: float = 1.0,
    no_repeat_ngram: int = 0,
    forbidden: tuple[int, ...] = (),
    once: frozenset[int] = frozenset(),
) -> list[Hypothesis]:
    """Finished hypotheses, best first (at most `beam_size`). `state` is for one input (first dimension 1)."""
    if beam_size < 1:
        raise ValueError("beam_size must be at least 1")
    tokens = torch.full((1, 1), sos, dtype=torch.long)  # (k, t): live hypotheses, start token first
    scores = torch.zeros(1)  # (k,)
    alphas: list[list[torch.Tensor]] = [[]]
    finished: list[Hypothesis] = []

    def finish(row: list[int], score: float, maps: list[torch.Tensor], length: int) -> None:
        finished.append(Hypothesis(row, score, score / max(1, length) ** length_penalty, maps))

    for t in range(max_len):
        log_probs, alpha, state = step(tokens[:, -1], state)  # (k, V), (k, P)
        log_probs = log_probs.float().clone()
        if forbidden:
            log_probs[:, list(forbidden)] = -torch.inf
        if no_repeat_ngram or once:
            for i, row in enumerate(tokens[:, 1:].tolist()):
                ban = banned_tokens(row, no_repeat_ngram) | (once & set(row))
                if ban:
                    log_probs[i, list(ban)] = -torch.inf
        vocab = log_probs.shape[1]
        candidates = (scores[:, None] + log_probs).view(-1)  # (k * V,)
        n_take = min(2 * beam_size, int(torch.isfinite(candidates).sum()))
        if n_take == 0:
            break
        top_scores, top = candidates.topk(n_take)
        beam_idx, token_idx = top // vocab, top % vocab  # integer index arithmetic
        keep = []
        for s, b, w in zip(top_scores.tolist(), beam_idx.tolist(), token_idx.tolist()):
            if w == eos:
                finish(tokens[b, 1:].tolist(), s, alphas[b], t + 1)
            else:
                keep.append((s, b, w))
            if len(keep) == beam_size:
                break
        if len(finished) >= beam_size or not keep:
            break
        b_keep = torch.tensor([b for _, b, _ in keep])
        new_alpha = [alphas[b] + ([alpha[b]] if alpha is not None else []) for _, b, _ in keep]
        tokens = torch.cat([tokens[b_keep], torch.tensor([[w] for _, _, w in keep])], dim=1)
        scores = torch.tensor([s for s, _, _ in keep])
        alphas = new_alpha
        state = _select(state, b_keep)
    else:  # max_len reached: live hypotheses end here, unfinished
        for i in range(tokens.shape[0]):
            finish(tokens[i, 1:].tolist(), float(scores[i]), alphas[i], tokens.shape[1] - 1)
    return sorted(finished, key=lambda h: -h.normalised)[:beam_size]
