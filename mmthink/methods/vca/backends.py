"""Who answers VCA's calls: a VLM (local HF or an OpenAI-compatible endpoint), or a scripted scorer.

Every backend turns a ``prompts.Call`` into reply *text*, so the same parsers (and their fallbacks)
run whichever answers. The scripted scorer perceives each frame through the truth of a generated video
(``mmthink data video``): exactly, or wrong with probability ``noise`` per frame, and garbles a reply
with probability ``malformed``; from what it perceives it rates segments the way a careful viewer would.
Its behaviour is known, so a study can tell the search's effect from the VLM's.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Optional

from mmthink.errors import UserError
from mmthink.methods.vca.config import BackendConfig
from mmthink.methods.vca.prompts import LETTERS, Call, Frame, text_parts
from mmthink.tasks.needle import COLOURS, Shown, shown_at

# The scripted viewer's relevance (0-100) of a segment from what its two boundary frames show: the
# needle at a boundary; both boundaries in the question's scene, or one, the longer the stretch the more
# it can hide (full marks from LONG seconds on); elsewhere.
SEEN_NEEDLE, ELSEWHERE, LONG = 95, 5, 20.0
INSIDE_SCENE, TOUCHES_SCENE = (40, 50), (20, 40)  # (base, + up to this for a long stretch)


class Scripted:
    def __init__(self, truth: dict, noise: float = 0.0, malformed: float = 0.0, seed: int = 0):
        if not truth or "needle" not in truth:
            raise UserError("the scripted backend perceives frames through a generated video's truth "
                            "(rows of mmthink data video); this row has none")
        self.truth, self.noise, self.malformed, self.seed = truth, noise, malformed, seed
        self.colour = truth["scenes"][truth["scene"]]["colour"]

    def perceive(self, frame: Frame) -> Shown:
        """What it sees in a frame: the truth, or (with probability ``noise``, fixed per frame) something else."""
        rng = random.Random(f"{self.seed}:{frame.index}")
        if rng.random() < self.noise:
            return Shown(rng.choice(sorted(COLOURS)), rng.randrange(10) if rng.random() < 0.5 else None)
        return shown_at(self.truth, frame.time)

    def reply(self, call: Call, seed: int = 0) -> str:
        rng = random.Random(f"{self.seed}:{seed}:{call.kind}:{[f.index for f in call.frames]}")
        seen = {f.number: self.perceive(f) for f in call.frames}
        if rng.random() < self.malformed:
            return rng.choice(["I cannot tell from these frames.", "relevance: high\nsufficient: maybe",
                               '{"relevance": [1, 2', "answer: the one with the digit"])
        described = "; ".join(f"{n} {s.colour}" + (f" digit {s.digit}" if s.digit is not None else "")
                              for n, s in seen.items())
        digits = [(n, s.digit) for n, s in seen.items() if s.digit is not None]
        if call.kind == "score":
            scores = [self._relevance(seen[a], seen[b], end - start) for a, b, start, end in call.segments]
            sufficient = 90 if digits else 10
            return f"frames: {described}\nrelevance: {' '.join(map(str, scores))}\nsufficient: {sufficient}"
        options = [str(o) for o in call.options]
        if not options:  # an open question: the digit it saw, if any
            said = str(digits[0][1]) if digits else "no digit seen"
            return f"frames: {described}\nanswer: {said}\nevidence: {digits[0][0] if digits else 1}"
        hit = next(((n, str(d)) for n, d in digits if str(d) in options), None)
        if hit is not None:
            letter, evidence = LETTERS[options.index(hit[1])], hit[0]
        else:  # it did not see the digit: a guess, and the frame of the right scene if any
            letter = LETTERS[rng.randrange(len(options))]
            evidence = next((n for n, s in seen.items() if s.colour == self.colour), call.frames[0].number)
        return f"frames: {described}\nanswer: {letter}\nevidence: {evidence}"

    def _relevance(self, a: Shown, b: Shown, seconds: float) -> int:
        if a.digit is not None or b.digit is not None:
            return SEEN_NEEDLE
        inside = (a.colour == self.colour) + (b.colour == self.colour)
        if inside == 0:
            return ELSEWHERE
        base, extra = INSIDE_SCENE if inside == 2 else TOUCHES_SCENE
        return round(base + extra * min(1.0, seconds / LONG))


class Chat:
    """A VLM answering a call: the frames decoded from the video, fitted to ``image_side``."""

    def __init__(self, vlm, video, image_side: int):
        self.vlm, self.video, self.image_side = vlm, video, image_side

    def reply(self, call: Call, seed: int = 0) -> str:
        from mmthink.ops.vlm import fit_side

        parts = [(k, v) if k == "text" else ("image", fit_side(self.video.frame(v.index), self.image_side))
                 for k, v in text_parts(call)]
        return self.vlm.chat(parts, seed)


class Backends:
    """Loads the VLM once; ``for_row(video, truth)`` gives the backend one exploration talks to."""

    def __init__(self, cfg: BackendConfig, output_dir: Optional[str], seed: int = 0, vlm=None):
        self.cfg, self.seed = cfg, seed
        self.vlm = None
        if cfg.kind == "scripted":
            return
        from mmthink.ops.vlm import EndpointVLM, ReplyCache

        if vlm is None and cfg.kind == "openai":
            vlm = EndpointVLM(cfg.endpoint, cfg.model_name or cfg.model.name, cfg.api_key_env, cfg.max_new_tokens,
                              0.0 if cfg.greedy else cfg.temperature)
        elif vlm is None:
            vlm = load_local_vlm(cfg)
        cache = Path(cfg.cache) if cfg.cache else (Path(output_dir) / "replies.jsonl" if output_dir else None)
        self.vlm = ReplyCache(vlm, cache, cfg.kind)

    @property
    def name(self) -> str:
        return "scripted" if self.vlm is None else f"{self.cfg.kind}:{self.vlm.name}"

    def for_row(self, video, truth: Optional[dict]):
        if self.vlm is None:
            return Scripted(truth or {}, self.cfg.noise, self.cfg.malformed, self.seed)
        return Chat(self.vlm, video, self.cfg.image_side)


def load_local_vlm(cfg: BackendConfig):
    import torch

    from mmthink.models.loading import load_model
    from mmthink.ops.vlm import LocalVLM

    loaded = load_model(cfg.model, train=False)
    device = cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"backend.device={device}: no CUDA device is visible")
    if cfg.model.quantization.bits is None:
        loaded.model.to(device)
    loaded.model.eval()
    return LocalVLM(loaded.model, loaded.tokenizer, loaded.image_processor, cfg.model.name, cfg.max_new_tokens,
                    0.0 if cfg.greedy else cfg.temperature)
