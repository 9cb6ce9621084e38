"""VCA's exploration of one video (setup → score the root segments → expand the best → answer), and the
baselines it is measured against at the same frame budget: uniform frames, and a VideoTree-style pick of
one frame per k-means cluster of all frames.

The search (paper: arXiv 2412.10471, section 3): N uniform frames bound N-1 root segments; one VLM call
scores every new segment (relevance 0-100 → [0, 1], the intrinsic reward) and says whether the frames
are enough to answer; the best segment anywhere in the tree (one global queue) is expanded by M frames
inside it, whose child segments the next call scores; stop on sufficiency ≥ threshold, after the
expansion limit or at the frame budget; answer from the boundary frames of the top-K remembered segments.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from typing import Optional

from mmthink.data.video import uniform_times
from mmthink.methods.vca.config import SearchConfig
from mmthink.methods.vca.prompts import LETTERS, Call, Frame, parse_answer, parse_scores
from mmthink.methods.vca.tree import Step, Tree

# The reward of a root segment whose call could not be read (a child keeps its parent's: no new
# evidence, same rank).
ROOT_FALLBACK = 0.5


@dataclass
class Result:
    strategy: str
    answer: str  # an option letter (a seeded guess when the reply could not be read); open questions: the text
    answer_parsed: bool
    answer_times: list  # the frames the answer was asked from, in time order
    evidence_time: Optional[float]  # the frame the VLM said shows it
    interval: Optional[list]  # where it located the answer: the evidence frame's cell among all frames shown
    frames_used: int  # unique frames shown to the VLM
    frames_decoded: int  # frames decoded in all (cluster decodes a pool it never shows)
    calls: int
    malformed: int  # replies that could not be (fully) read
    stop: str
    tree: Optional[Tree] = field(default=None, repr=False)

    def to_json(self) -> dict:
        out = asdict(self)
        out.pop("tree")
        return out


def iou(a: Optional[list], b: list) -> float:
    """|a ∩ b| / |a ∪ b| of two time intervals; 0 without a prediction."""
    if a is None:
        return 0.0
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = max(a[1], b[1]) - min(a[0], b[0])
    return inter / union if union > 0 else 0.0


def cell(t: float, shown: list, duration: float) -> list:
    """The span of time closer to frame ``t`` than to any other shown frame."""
    times = sorted(set(shown))
    k = times.index(t)
    lo = 0.0 if k == 0 else (times[k - 1] + t) / 2
    hi = duration if k == len(times) - 1 else (t + times[k + 1]) / 2
    return [lo, hi]


def snap(video, times) -> dict:
    """Timestamps → {frame index: that frame's time} (two times in one frame are one frame)."""
    return {video.index(t): video.times[video.index(t)] for t in times}


def spread(keys: list, n: int) -> list:
    """``n`` of the sorted ``keys``, evenly spaced (all when there are no more than ``n``)."""
    if len(keys) <= n:
        return keys
    if n == 1:
        return [keys[len(keys) // 2]]
    return [keys[round(k * (len(keys) - 1) / (n - 1))] for k in range(n)]


class Session:
    """One question about one video: the calls made so far and how many replies were unreadable."""

    def __init__(self, video, backend, question: str, options: list, seed: int = 0):
        self.video, self.backend, self.question, self.options, self.seed = video, backend, question, options, seed
        self.calls = self.malformed = 0
        self.rng = random.Random(seed)

    def call(self, kind: str, times: list, segments=(), history=()) -> tuple[Call, str]:
        times = sorted(set(times))
        number = {t: k + 1 for k, t in enumerate(times)}
        frames = [Frame(number[t], t, self.video.index(t)) for t in times]
        segs = [(number[a], number[b], a, b) for a, b in segments]
        c = Call(kind, self.question, self.options, frames, segs, list(history))
        self.calls += 1
        return c, self.backend.reply(c, self.seed + self.calls)

    def score(self, times: list, segments: list, history: list, fallback: float):
        c, text = self.call("score", times, segments, history)
        s = parse_scores(text, len(segments))
        ok = s.relevance is not None and s.sufficiency is not None
        self.malformed += not ok
        return (s.relevance or [fallback] * len(segments)), (s.sufficiency if s.sufficiency is not None else 0.0), ok, text

    def answer(self, times: list, shown: list, strategy: str, stop: str, tree=None, decoded=None) -> Result:
        c, text = self.call("answer", times)
        a = parse_answer(text, self.options, [f.number for f in c.frames])
        parsed = a.letter is not None
        self.malformed += not parsed
        if a.letter is not None:
            letter = a.letter
        else:  # unreadable: a seeded guess among the options (an open question has no answer)
            letter = LETTERS[self.rng.randrange(len(self.options))] if self.options else ""
        t = next((f.time for f in c.frames if f.number == a.evidence), None)
        interval = cell(t, shown, self.video.duration) if t is not None else None
        return Result(strategy, letter, parsed, sorted(set(times)), t, interval, len(set(shown)),
                      decoded if decoded is not None else len(set(shown)), self.calls, self.malformed, stop, tree)


def explore(video, backend, question: str, options: list, s: SearchConfig, seed: int = 0) -> Result:
    """VCA on one video; the result carries the exploration tree."""
    session = Session(video, backend, question, options, seed)
    tree = Tree(video.duration)
    root = snap(video, uniform_times(video.times[0], video.times[-1], s.initial_frames))
    tree.add_frames(root)
    times = sorted(root.values())
    if len(times) < 2:  # a one-frame video: nothing to search
        return session.answer(times, times, "vca", "one_frame", tree)
    segments = list(zip(times, times[1:]))
    scores, sufficiency, ok, text = session.score(times, segments, [], ROOT_FALLBACK)
    ids = [tree.add_segment(a, b, None, r, 0).id for (a, b), r in zip(segments, scores)]
    tree.steps.append(Step(0, None, times, ids, sufficiency, ok, text))
    history = [f"Step 0: {len(times)} frames over the whole video; the most relevant part scored "
               f"{max(scores) * 100:.0f}."]
    step = 0
    while True:
        if sufficiency >= s.sufficiency:
            stop = "sufficient"
            break
        if step >= s.max_expansions:
            stop = "max_expansions"
            break
        room = s.frame_budget - len(tree.frames)
        if room <= 0:
            stop = "frame_budget"
            break
        seg = tree.pop(s.min_duration)
        if seg is None:
            stop = "exhausted"
            break
        seg.expanded = True
        inside = snap(video, uniform_times(seg.start, seg.end, s.frames_per_expansion + 2)[1:-1])
        fresh = sorted(i for i, t in inside.items() if i not in tree.frames and seg.start < t < seg.end)
        fresh = {i: inside[i] for i in spread(fresh, room)}
        if not fresh:  # no unseen frame inside: a leaf, no call
            continue
        step += 1
        new = tree.add_frames(fresh)
        bounds = sorted([seg.start, *fresh.values(), seg.end])
        children = list(zip(bounds, bounds[1:]))
        # The VLM sees what it remembers and the expanded segment (re-sent frames cost no budget).
        shown = sorted(set(tree.memory_times(s.memory)) | set(bounds))
        scores, sufficiency, ok, text = session.score(shown, children, history[-s.history:] if s.history else [],
                                                      seg.score)
        ids = [tree.add_segment(a, b, seg.id, r, step).id for (a, b), r in zip(children, scores)]
        tree.steps.append(Step(step, seg.id, new, ids, sufficiency, ok, text))
        history.append(f"Step {step}: looked inside {seg.start:.1f}-{seg.end:.1f}s (relevance {seg.score * 100:.0f}); "
                       f"best part inside scored {max(scores) * 100:.0f}.")
    return session.answer(tree.memory_times(s.memory), list(tree.frames.values()), "vca", stop, tree)


def uniform(video, backend, question: str, options: list, budget: int, seed: int = 0) -> Result:
    """``budget`` frames spread evenly over the video, one answer call."""
    session = Session(video, backend, question, options, seed)
    times = sorted(snap(video, uniform_times(video.times[0], video.times[-1], budget)).values())
    return session.answer(times, times, "uniform", "budget")


def thumbnails(images, side: int = 8):
    """Frame features for clustering: each frame shrunk to ``side`` x ``side`` RGB, flattened, in [0, 1]."""
    import numpy as np

    return np.stack([np.asarray(im.resize((side, side)), dtype=np.float32).ravel() / 255.0 for im in images])


def cluster(video, backend, question: str, options: list, budget: int, seed: int = 0, pool_fps: float = 1.0) -> Result:
    """VideoTree-style: k-means (k = budget) over small thumbnails of a 1 fps pool, the frame nearest
    each centre shown. Its features are pixels, not CLIP: only what separates look-alike scenes."""
    import numpy as np
    from sklearn.cluster import KMeans

    every = max(1, round(video.fps / pool_fps))
    pool = list(range(0, video.n_frames, every))
    if hasattr(video, "decode_all"):
        video.decode_all(every)
    feats = thumbnails([video.frame(i) for i in pool])
    k = min(budget, len(pool))
    km = KMeans(n_clusters=k, n_init=3, random_state=seed).fit(feats)
    picked = sorted({pool[int(np.argmin(((feats - c) ** 2).sum(1)))] for c in km.cluster_centers_})
    times = [video.times[i] for i in picked]
    session = Session(video, backend, question, options, seed)
    return session.answer(times, times, "cluster", "budget", decoded=len(pool))
