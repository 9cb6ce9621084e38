"""The exploration tree of VCA: segments of the video, one global best-first queue, the top-K memory.

Pure bookkeeping, no video and no model: ``explore.py`` decides what to show and asks the VLM; this
keeps which segments exist, their rewards, the frames shown so far (the budget counts each frame once)
and what to expand next. The tree saves to JSON and reloads, so a run can be inspected or drawn later.
"""

from __future__ import annotations

import heapq
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional


@dataclass
class Segment:
    id: int
    start: float  # seconds: the time of its first boundary frame
    end: float  # the time of its last boundary frame
    parent: Optional[int]
    depth: int
    score: float  # the VLM's relevance in [0, 1]: the intrinsic reward
    step: int  # the call that scored it (0: the root call)
    expanded: bool = False

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass
class Step:
    step: int
    expanded: Optional[int]  # the segment looked inside (None: the root call)
    new_frames: list  # times of the frames first shown in this call
    children: list  # ids of the segments it scored
    sufficiency: float
    parsed: bool  # False: the reply could not be read and the fallback was used
    reply: str


@dataclass
class Tree:
    duration: float
    frames: dict = field(default_factory=dict)  # frame index -> time, every frame shown so far
    segments: list = field(default_factory=list)
    steps: list = field(default_factory=list)
    _queue: list = field(default_factory=list, repr=False)

    def add_frames(self, indexed_times: dict) -> list:
        """Record frames as shown; returns the times of those not shown before."""
        new = [t for i, t in sorted(indexed_times.items()) if i not in self.frames]
        self.frames.update(indexed_times)
        return new

    def add_segment(self, start: float, end: float, parent: Optional[int], score: float, step: int) -> Segment:
        depth = 0 if parent is None else self.segments[parent].depth + 1
        seg = Segment(len(self.segments), start, end, parent, depth, score, step)
        self.segments.append(seg)
        # One global queue: the best segment anywhere in the tree, earlier-scored first on ties.
        heapq.heappush(self._queue, (-score, seg.id))
        return seg

    def pop(self, min_duration: float) -> Optional[Segment]:
        """The best unexpanded segment longer than ``min_duration`` (shorter ones stay leaves), or None."""
        while self._queue:
            _, sid = heapq.heappop(self._queue)
            seg = self.segments[sid]
            if not seg.expanded and seg.duration > min_duration:
                return seg
        return None

    def memory(self, k: int) -> list:
        """The top-``k`` segments by reward (ties: the earlier one)."""
        return sorted(self.segments, key=lambda s: (-s.score, s.id))[:k]

    def memory_times(self, k: int) -> list:
        """Boundary times of the remembered segments with reward > 0, in time order (all of the top-k
        when none has a reward: something must be shown)."""
        kept = [s for s in self.memory(k) if s.score > 0] or self.memory(k)
        return sorted({t for s in kept for t in (s.start, s.end)})

    def to_json(self) -> dict:
        return {"duration": self.duration, "frames": [[i, t] for i, t in sorted(self.frames.items())],
                "segments": [asdict(s) for s in self.segments], "steps": [asdict(s) for s in self.steps]}

    @classmethod
    def from_json(cls, obj: dict) -> "Tree":
        tree = cls(obj["duration"])
        tree.frames = {int(i): float(t) for i, t in obj["frames"]}
        for s in obj["segments"]:
            seg = Segment(**s)
            tree.segments.append(seg)
            if not seg.expanded:
                heapq.heappush(tree._queue, (-seg.score, seg.id))
        tree.steps = [Step(**s) for s in obj["steps"]]
        return tree

    def save(self, path: Path, extra: Optional[dict] = None) -> None:
        tmp = path.with_name(path.name + ".part")
        tmp.write_text(json.dumps({**(extra or {}), "tree": self.to_json()}, indent=1))
        tmp.replace(path)


def load_tree(path: Path) -> tuple[Tree, dict]:
    obj = json.loads(Path(path).read_text())
    return Tree.from_json(obj["tree"]), {k: v for k, v in obj.items() if k != "tree"}
