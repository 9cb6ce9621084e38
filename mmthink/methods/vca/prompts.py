"""What VCA asks the VLM, and the parsers of its replies.

Two calls: ``score`` (after the root frames and after each expansion) asks for one relevance per new
segment (0-100) and whether the frames seen are enough to answer (0-100); ``answer`` shows the memory
frames in time order and asks for the option letter and the frame that shows it. A call is a list of
parts, text or a frame, so every backend renders the same thing (chat content parts for a VLM, the
frames' timestamps for the scripted scorer).

The parsers accept what VLMs write (JSON, ``key: value`` lines, fenced code, percentages, extra prose)
and say when a reply could not be used, so the agent can count it and fall back instead of failing.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Optional, Sequence

LETTERS = "ABCDEFGH"
_NUMBER = r"-?\d+(?:\.\d+)?"


@dataclass
class Frame:
    number: int  # as the prompt names it: "Frame 3"
    time: float
    index: int  # the video's frame index


@dataclass
class Call:
    kind: str  # "score" or "answer"
    question: str
    options: list
    frames: list  # Frame, shown in this order
    segments: list = field(default_factory=list)  # (first frame number, last frame number, start s, end s)
    history: list = field(default_factory=list)  # lines about earlier steps


def option_lines(options: Sequence[str]) -> str:
    return "\n".join(f"{LETTERS[i]}. {o}" for i, o in enumerate(options))


def text_parts(call: Call) -> list:
    """The call as chat content: ``("text", str)`` and ``("frame", Frame)`` in order."""
    parts = [("text", "You are watching a long video to answer a question. Frames (time in seconds):")]
    for f in call.frames:
        parts += [("text", f"\nFrame {f.number} (t={f.time:.1f}s):"), ("frame", f)]
    q = f"\n\nQuestion: {call.question}"
    if call.options:
        q += "\nOptions:\n" + option_lines(call.options)
    parts.append(("text", q))
    if call.kind == "score":
        seg = "\n".join(f"Segment {k + 1}: between Frame {a} and Frame {b} ({s:.1f}-{e:.1f}s)"
                        for k, (a, b, s, e) in enumerate(call.segments))
        hist = ("\nSo far:\n" + "\n".join(call.history)) if call.history else ""
        parts.append(("text", f"{hist}\n\nSegments you may look inside next:\n{seg}\n\n"
                              "First say in one short line what each frame shows. Then rate how likely each "
                              "segment holds what the question needs, and whether the frames are already "
                              "enough to answer. Reply in this form:\nframes: <what each frame shows>\n"
                              f"relevance: <{len(call.segments)} numbers 0-100, one per segment, in order>\n"
                              "sufficient: <0-100>"))
    else:
        parts.append(("text", "\n\nFirst say in one short line what each frame shows, then answer. Reply in "
                              "this form:\nframes: <what each frame shows>\nanswer: "
                              f"{'<the option letter>' if call.options else '<a short answer>'}\n"
                              "evidence: <the number of the frame that shows it>"))
    return parts


def prompt_text(call: Call) -> str:
    """The call with each frame as a placeholder: what the reply cache keys on beside the pixels."""
    return "".join(p if kind == "text" else "<frame>" for kind, p in text_parts(call))


@dataclass
class Scores:
    relevance: Optional[list]  # one per segment in [0, 1]; None: unusable
    sufficiency: Optional[float]  # in [0, 1]; None: unusable


def _unit(v: float) -> float:
    """0-100 (or a 0-1 fraction, as some models write) to [0, 1]."""
    v = v / 100.0 if v > 1.0 else v
    return min(1.0, max(0.0, v))


def _json_object(text: str) -> Optional[dict]:
    m = re.search(r"\{.*\}", text, re.S)
    if not m:
        return None
    try:
        obj = json.loads(m.group(0))
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def parse_scores(text: str, n_segments: int) -> Scores:
    """Relevance per segment and sufficiency from a reply; a part that cannot be read is None."""
    obj = _json_object(text)
    relevance = sufficiency = None
    if obj is not None:
        rel = next((obj[k] for k in ("relevance", "scores", "segments") if k in obj), None)
        if isinstance(rel, dict):
            rel = [rel.get(str(k + 1), rel.get(k + 1)) for k in range(n_segments)]
        if isinstance(rel, list) and len(rel) == n_segments and all(isinstance(v, (int, float)) for v in rel):
            relevance = [_unit(float(v)) for v in rel]
        suf = next((obj[k] for k in ("sufficient", "sufficiency", "confidence") if k in obj), None)
        if isinstance(suf, (int, float)) and not isinstance(suf, bool):
            sufficiency = _unit(float(suf))
    if relevance is None:
        m = re.search(r"relevance\s*[:=]\s*\[?([^\n\]]*)", text, re.I)
        if m:
            values = [float(v) for v in re.findall(_NUMBER, m.group(1))]
            if len(values) == n_segments:
                relevance = [_unit(v) for v in values]
        if relevance is None:  # "Segment 2: 80" lines
            found = {int(k): float(v) for k, v in re.findall(rf"segment\s*(\d+)\s*[:=-]\s*({_NUMBER})", text, re.I)}
            if found and set(found) == set(range(1, n_segments + 1)):
                relevance = [_unit(found[k + 1]) for k in range(n_segments)]
    if sufficiency is None:
        m = re.search(rf"sufficien\w*\s*[:=]\s*({_NUMBER})", text, re.I)
        if m:
            sufficiency = _unit(float(m.group(1)))
        elif re.search(r"sufficien\w*\s*[:=]\s*yes", text, re.I):
            sufficiency = 1.0
        elif re.search(r"sufficien\w*\s*[:=]\s*no", text, re.I):
            sufficiency = 0.0
    return Scores(relevance, sufficiency)


@dataclass
class Answer:
    letter: Optional[str]  # the option letter (without options: the short answer); None: none could be read
    evidence: Optional[int]  # a frame number of the call, or None


def _evidence(text: str, frame_numbers: Sequence[int]) -> Optional[int]:
    m = re.search(r"evidence\s*[:=]\s*(?:frame\s*)?(\d+)", text, re.I)
    return int(m.group(1)) if m and int(m.group(1)) in frame_numbers else None


def parse_answer(text: str, options: Sequence[str], frame_numbers: Sequence[int]) -> Answer:
    if not options:  # an open question: the text after "answer:"
        m = re.search(r"answer\s*[:=]\s*([^\n]+)", text, re.I)
        said = m.group(1).strip() if m else ""
        return Answer(said or None, _evidence(text, frame_numbers))
    letters = LETTERS[: len(options)]
    letter = None
    obj = _json_object(text)
    if obj is not None and isinstance(obj.get("answer"), str):
        letter = obj["answer"].strip().upper()[:1] or None
    if letter is None:
        m = re.search(rf"answer\s*[:=]?\s*\(?([{letters}{letters.lower()}])\b", text, re.I)
        if m:
            letter = m.group(1).upper()
    if letter is None:  # the option's text instead of its letter
        m = re.search(r"answer\s*[:=]\s*([^\n]+)", text, re.I)
        said = m.group(1).strip().strip(".").lower() if m else ""
        hits = [i for i, o in enumerate(options) if said and str(o).strip().lower() == said]
        if len(hits) == 1:
            letter = LETTERS[hits[0]]
    if letter is not None and letter not in letters:
        letter = None
    return Answer(letter, _evidence(text, frame_numbers))
