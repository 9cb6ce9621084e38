"""Synthetic long videos with one planted "needle": the task ``mmthink data video`` writes.

A video is a run of scenes, each a solid background colour with a grey shape drifting across it. Inside
one scene a large white digit (drawn as seven segments, no fonts needed) shows for a few seconds. The
question names the scene's colour and asks for the digit, so an agent can find the scene from coarse
frames and must then look closely inside it: uniform sampling at a small budget often steps over a
short needle. Each row keeps the truth (scenes, needle interval, digit) so accuracy, frames used and
needle-interval IoU can be measured, and so a scorer with known behaviour can perceive frames exactly.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Optional

COLOURS = {"red": (200, 40, 40), "green": (40, 160, 60), "blue": (40, 70, 200), "yellow": (220, 200, 40),
           "purple": (130, 50, 170), "orange": (230, 130, 30), "cyan": (40, 190, 200), "pink": (230, 120, 170)}
LETTERS = "ABCDEFGH"
# Seven segments a-g (top, top-right, bottom-right, bottom, bottom-left, top-left, middle) lit per digit.
SEGMENTS = {0: "abcdef", 1: "bc", 2: "abdeg", 3: "abcdg", 4: "bcfg", 5: "acdfg", 6: "acdefg", 7: "abc",
            8: "abcdefg", 9: "abcdfg"}


@dataclass(frozen=True)
class Shown:
    """What one frame shows: the scene's colour and the needle's digit (None when absent)."""
    colour: str
    digit: Optional[int]


def shown_at(truth: dict, t: float) -> Shown:
    """The content of the frame at time ``t`` of a video with this truth."""
    colour = truth["scenes"][-1]["colour"]
    for scene in truth["scenes"]:
        if scene["start"] <= t < scene["end"]:
            colour = scene["colour"]
            break
    needle = truth["needle"]
    return Shown(colour, needle["digit"] if needle["start"] <= t < needle["end"] else None)


def layout(rng: random.Random, duration: float, n_scenes: int, needle_s: float) -> dict:
    """Scene boundaries, colours and the needle (inside one scene, away from its edges)."""
    min_scene = duration / n_scenes / 2
    cuts = sorted(rng.uniform(0, duration - n_scenes * min_scene) for _ in range(n_scenes - 1))
    starts = [0.0] + [c + (k + 1) * min_scene for k, c in enumerate(cuts)]
    ends = starts[1:] + [duration]
    colours = rng.sample(sorted(COLOURS), n_scenes)
    scenes = [{"start": round(s, 3), "end": round(e, 3), "colour": c} for s, e, c in zip(starts, ends, colours)]
    target = rng.randrange(n_scenes)
    s = scenes[target]
    margin = min(2.0, (s["end"] - s["start"] - needle_s) / 2)
    start = rng.uniform(s["start"] + margin, s["end"] - margin - needle_s)
    needle = {"start": round(start, 3), "end": round(start + needle_s, 3), "digit": rng.randrange(10)}
    return {"duration": duration, "scenes": scenes, "needle": needle, "scene": target}


def draw_digit(draw, digit: int, box: tuple) -> None:
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    t = max(2, w // 6)  # stroke
    mid = y0 + h // 2
    bars = {"a": (x0, y0, x1, y0 + t), "d": (x0, y1 - t, x1, y1), "g": (x0, mid - t // 2, x1, mid + t // 2),
            "f": (x0, y0, x0 + t, mid), "b": (x1 - t, y0, x1, mid), "e": (x0, mid, x0 + t, y1), "c": (x1 - t, mid, x1, y1)}
    for seg in SEGMENTS[digit]:
        draw.rectangle(bars[seg], fill=(255, 255, 255))


def render(truth: dict, t: float, size: int):
    """The frame at time ``t``: background, the drifting grey shape, the digit while the needle shows."""
    from PIL import Image, ImageDraw

    what = shown_at(truth, t)
    im = Image.new("RGB", (size, size), COLOURS[what.colour])
    draw = ImageDraw.Draw(im)
    r = size // 8
    phase = (t / 7.0) % 2
    cx = int(r + (size - 2 * r) * (phase if phase < 1 else 2 - phase))
    cy = size - 2 * r
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(128, 128, 128))
    if what.digit is not None:
        m = size // 4
        draw.rectangle((m - 4, m // 2 - 4, size - m + 4, size - m + 4), fill=(0, 0, 0))
        draw_digit(draw, what.digit, (m, m // 2, size - m, size - m))
    return im


def question(rng: random.Random, truth: dict, n_options: int = 4) -> dict:
    colour = truth["scenes"][truth["scene"]]["colour"]
    digit = truth["needle"]["digit"]
    options = rng.sample([d for d in range(10) if d != digit], n_options - 1) + [digit]
    rng.shuffle(options)
    return {"question": f"During the {colour} part of the video a white digit appears briefly. Which digit is it?",
            "options": [str(o) for o in options], "answer": LETTERS[options.index(digit)]}


def generate(n: int, seed: int, duration: float = 240.0, fps: int = 2, n_scenes: int = 6, needle_s: float = 4.0,
             size: int = 96):
    """``n`` (truth, question, frames) triples; frames is a generator of PIL images at ``fps``."""
    rng = random.Random(seed)
    for k in range(n):
        truth = layout(rng, duration, n_scenes, needle_s)
        q = question(rng, truth)
        frames = (render(truth, i / fps, size) for i in range(int(round(duration * fps))))
        yield k, truth, q, frames
