"""EvoScale's inference loop and the baselines it is compared with, at the same sample budget N = M x T.

Iteration 0 samples M outputs per problem from the task prompt. Iteration t + 1 samples M outputs
y ~ pi(. | x, E^t), where the conditioning set E^t is the top-K outputs of iteration t by the selection
score: the task's own graded score (scorer ``tests``), a reward model's or the model's own judgment
(``reward_model``, ``self``), or, without a scorer (``none``, self-evolve), K of iteration t's outputs
drawn at random: the model is the mutation operator, selection keeps the best. The answer is the output
seen with the best selection score, or the last iteration's first sample (self-evolve). Every candidate
is recorded with its true score, its selection score (``rank``) and its parents; the true score is
always computed for the report, even when the loop may not look at it.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from typing import Callable, Optional, Sequence


@dataclass
class Candidate:
    id: str  # <problem>/<method>/<iteration>/<index>
    problem: str
    method: str  # evoscale | best_of_n | greedy
    iteration: int
    text: str
    score: float
    parents: list = field(default_factory=list)  # ids of the conditioning outputs
    rank: Optional[float] = None  # the selection score, where it is not the true score (reward model, judge)

    @property
    def merit(self) -> float:
        """What selection sees: the rank where there is one, else the true score."""
        return self.score if self.rank is None else self.rank

    def record(self) -> dict:
        return asdict(self)


def conditioning_prompt(task_prompt: str, parents: Sequence[tuple[str, float]], show_scores: bool,
                        max_chars: int) -> str:
    """The task, then the conditioning outputs, then the request for a better one."""
    shown = []
    for i, (text, score) in enumerate(parents):
        text = text if len(text) <= max_chars else text[:max_chars] + " ..."
        head = f"Attempt {i + 1}" + (f" (score {score:.2f})" if show_scores else "")
        shown.append(f"{head}:\n{text.strip()}")
    attempts = "\n\n".join(shown)
    return f"{task_prompt}\n\nEarlier attempts:\n\n{attempts}\n\nWrite an improved answer."


def top_k(candidates: Sequence[Candidate], k: int) -> list:
    """The k best by merit; ties keep the earlier candidate (a stable sort)."""
    return sorted(candidates, key=lambda c: -c.merit)[:k]


Sample = Callable[[list, int, float, int], list]  # (prompts, n, temperature, seed) -> [[text] * n]
Score = Callable[[list], list]  # [(problem, text)] -> [score]
Rank = Callable[[list], list]  # [(problem, text)] -> [selection score]: a reward model, a judge
BY_SCORE = "score"  # rank by the true score (scorer tests)


def _ranks(rank, pairs: list) -> list:
    return [None] * len(pairs) if rank == BY_SCORE else list(rank(pairs))


def evolve(problems: Sequence[dict], prompt_of: Callable[[dict], str], sample: Sample, score: Score, k: int, m: int,
           t: int, temperature: float, seed: int, rank: Optional[Rank] | str = BY_SCORE, show_scores: bool = False,
           max_chars: int = 1200) -> list[Candidate]:
    """All candidates of T iterations of M samples per problem, in generation order. ``rank``: BY_SCORE,
    a selection scorer, or None (self-evolve: random parents)."""
    rng = random.Random(seed)
    out: list[Candidate] = []
    parents: dict[str, list] = {}
    for it in range(t):
        prompts = [prompt_of(p) if it == 0 else
                   conditioning_prompt(prompt_of(p), [(c.text, c.merit) for c in parents[p["id"]]], show_scores,
                                       max_chars) for p in problems]
        texts = sample(prompts, m, temperature, seed * 1_000_003 + it * 7919)
        pairs = [(p, y) for p, ys in zip(problems, texts) for y in ys]
        scores = score(pairs)
        ranks = [None] * len(pairs) if rank is None else _ranks(rank, pairs)
        for i, p in enumerate(problems):
            pid = p["id"]
            mine = [Candidate(f"{pid}/evoscale/{it}/{j}", pid, "evoscale", it, texts[i][j], scores[i * m + j],
                              [c.id for c in parents.get(pid, [])], ranks[i * m + j]) for j in range(m)]
            out += mine
            parents[pid] = top_k(mine, k) if rank is not None else rng.sample(mine, k)
    return out


def best_of_n(problems: Sequence[dict], prompt_of: Callable[[dict], str], sample: Sample, score: Score, n: int,
              temperature: float, seed: int, rank: Optional[Rank] | str = BY_SCORE) -> list[Candidate]:
    """N samples of the task prompt; the answer is the best by ``rank`` (BY_SCORE, or the scorer EvoScale
    selects by; None is taken as BY_SCORE: best-of-N has no meaning without a scorer)."""
    texts = sample([prompt_of(p) for p in problems], n, temperature, seed * 1_000_003 + 17)
    pairs = [(p, y) for p, ys in zip(problems, texts) for y in ys]
    scores = score(pairs)
    ranks = _ranks(rank or BY_SCORE, pairs)
    return [Candidate(f"{p['id']}/best_of_n/0/{j}", p["id"], "best_of_n", 0, texts[i][j], scores[i * n + j],
                      rank=ranks[i * n + j]) for i, p in enumerate(problems) for j in range(n)]


def greedy(problems: Sequence[dict], prompt_of: Callable[[dict], str], sample: Sample, score: Score) -> list[Candidate]:
    texts = sample([prompt_of(p) for p in problems], 1, 0.0, 0)
    scores = score([(p, ys[0]) for p, ys in zip(problems, texts)])
    return [Candidate(f"{p['id']}/greedy/0/0", p["id"], "greedy", 0, texts[i][0], scores[i]) for i, p in enumerate(problems)]


# ---------------------------------------------------------------------------------------------------
# What the candidates say


def best_so_far(candidates: Sequence[Candidate]) -> dict[str, list]:
    """{problem: [best true score among its first n candidates, n = 1..]} in generation order (an oracle's pick)."""
    out: dict[str, list] = {}
    for c in candidates:
        run = out.setdefault(c.problem, [])
        run.append(max(run[-1], c.score) if run else c.score)
    return out


def mean_curve(candidates: Sequence[Candidate]) -> list:
    """Mean over problems of the best score after n samples, n = 1..N."""
    runs = list(best_so_far(candidates).values())
    return [sum(r[n] for r in runs) / len(runs) for n in range(min(map(len, runs)))]


def selected_curve(candidates: Sequence[Candidate]) -> list:
    """Mean over problems of the true score of the candidate with the best merit among the first n: what
    selection by a reward model or a judge actually answers with (``mean_curve`` where merit is the score)."""
    picks: dict[str, list] = {}
    for c in candidates:
        run = picks.setdefault(c.problem, [])
        run.append(c if not run or c.merit > run[-1].merit else run[-1])
    runs = list(picks.values())
    return [sum(r[n].score for r in runs) / len(runs) for n in range(min(map(len, runs)))]


def samples_to_reach(candidates: Sequence[Candidate], target: float) -> tuple[Optional[float], float]:
    """(mean samples until a problem's best score first reaches ``target``, over the problems that reach it;
    the fraction of problems that reach it within the budget)."""
    runs = list(best_so_far(candidates).values())
    hits = [next(n + 1 for n, s in enumerate(r) if s >= target) for r in runs if r and r[-1] >= target]
    return (sum(hits) / len(hits) if hits else None), len(hits) / len(runs)


def samples_to_mean(curve: Sequence[float], target: float) -> Optional[int]:
    """The smallest n with mean best@n >= ``target`` (``curve`` from ``mean_curve``); None if never."""
    return next((n + 1 for n, v in enumerate(curve) if v >= target - 1e-12), None)


def final_answers(candidates: Sequence[Candidate], ranked: bool) -> dict[str, Candidate]:
    """Each problem's answer: the candidate of best merit (with a scorer) or its last iteration's first sample."""
    out: dict[str, Candidate] = {}
    for c in candidates:
        seen = out.get(c.problem)
        if seen is None:
            out[c.problem] = c
        elif ranked and c.merit > seen.merit:
            out[c.problem] = c
        elif not ranked and c.iteration > seen.iteration:
            out[c.problem] = c
    return out


def per_iteration_mean(candidates: Sequence[Candidate]) -> list:
    """Mean score of each iteration's samples (self-evolution: does it rise?)."""
    by_it: dict[int, list] = {}
    for c in candidates:
        by_it.setdefault(c.iteration, []).append(c.score)
    return [sum(v) / len(v) for _, v in sorted(by_it.items())]
