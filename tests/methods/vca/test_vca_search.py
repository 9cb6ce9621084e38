"""VCA's search on generated mp4 files: the global queue, the stop rule, the frame budget, unreadable
replies, the tree JSON; and the parsers on what VLMs write."""

import json
from pathlib import Path

import pytest

from mmthink.data.video import open_video
from mmthink.methods.vca.backends import Scripted
from mmthink.methods.vca.config import SearchConfig
from mmthink.methods.vca.explore import cell, explore, iou, uniform
from mmthink.methods.vca.prompts import parse_answer, parse_scores
from mmthink.methods.vca.tree import load_tree


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    from typer.testing import CliRunner

    from mmthink.cli import app

    out = tmp_path_factory.mktemp("video") / "d"
    res = CliRunner().invoke(app, ["data", "video", "--out", str(out), "--n", "4", "--duration", "120",
                                   "--scenes", "4", "--needle", "2", "--size", "48", "--seed", "5"])
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in (out / "test.jsonl").read_text().splitlines()]
    return out, rows


class Replies:
    """A backend that answers score calls from a list of (relevance list, sufficiency) and records calls."""

    def __init__(self, plan, answer="answer: A\nevidence: 1"):
        self.plan, self.answer, self.calls = list(plan), answer, []

    def reply(self, call, seed=0):
        self.calls.append(call)
        if call.kind == "answer":
            return self.answer
        rel, suf = self.plan.pop(0) if self.plan else ([10] * len(call.segments), 0)
        rel = (rel + [1] * len(call.segments))[: len(call.segments)]
        return f"relevance: {' '.join(map(str, rel))}\nsufficient: {suf}"


def _video(videos, k=0):
    out, rows = videos
    return open_video(out / rows[k]["video"]), rows[k]


def test_generated_video_reads_back_the_planted_needle(videos):
    from mmthink.tasks.needle import shown_at

    video, row = _video(videos)
    assert video.fps == 2 and video.n_frames == 240 and video.duration == pytest.approx(120.0)
    needle = row["truth"]["needle"]
    i = video.index((needle["start"] + needle["end"]) / 2)
    assert shown_at(row["truth"], video.times[i]).digit == needle["digit"]
    import numpy as np

    from mmthink.tasks.needle import render

    def diff(a, b):
        return float(np.abs(np.asarray(a, float) - np.asarray(b, float)).mean())

    # seeking lands on the exact frame: it matches the frame rendered for its time, not its neighbours'
    at = video.frame(i)
    assert diff(at, render(row["truth"], video.times[i], 48)) < 6
    assert diff(at, render(row["truth"], needle["start"] - 1.0, 48)) > 20  # the digit is what differs


def test_the_queue_is_global_an_earlier_branch_wins_over_a_later_expanded_one(videos):
    video, row = _video(videos)
    s = SearchConfig(initial_frames=4, frames_per_expansion=2, frame_budget=40, max_expansions=3, memory=3)
    # root: segments 0 (80), 1 (70), 2 (10); children of 0 score 20, so root segment 1 goes next, then its
    # child at 90 beats everything left
    backend = Replies([([80, 70, 10], 0), ([20, 20, 20], 0), ([90, 30, 30], 0), ([5, 5, 5], 0)])
    r = explore(video, backend, row["question"], row["options"], s)
    tree = r.tree
    expanded = [st.expanded for st in tree.steps[1:]]
    assert expanded[0] == 0 and expanded[1] == 1  # not a child of segment 0 (depth 1), the root segment 1
    child_of_1 = tree.steps[2].children[0]
    assert expanded[2] == child_of_1 and tree.segments[child_of_1].depth == 1


def test_sufficiency_stops_the_search(videos):
    video, row = _video(videos)
    backend = Replies([([50] * 7, 70)])
    r = explore(video, backend, row["question"], row["options"], SearchConfig(sufficiency=0.6))
    assert r.stop == "sufficient" and r.calls == 2 and r.frames_used == 8
    backend = Replies([([50] * 7, 70)] + [([50] * 9, 10)] * 5)
    r = explore(video, backend, row["question"], row["options"], SearchConfig(sufficiency=0.8, frame_budget=60))
    assert r.stop == "max_expansions" and r.calls == 1 + 5 + 1


@pytest.mark.parametrize("budget", [8, 9, 13, 20, 31])
def test_the_frame_budget_is_never_exceeded(videos, budget):
    video, row = _video(videos, 1)
    for noise in (0.0, 0.5):
        backend = Scripted(row["truth"], noise=noise, seed=1)
        r = explore(video, backend, row["question"], row["options"], SearchConfig(frame_budget=budget, max_expansions=9))
        assert r.frames_used == len(r.tree.frames) <= budget
        assert set(r.answer_times) <= set(r.tree.frames.values())
        u = uniform(video, backend, row["question"], row["options"], budget)
        assert u.frames_used == budget


def test_memory_frames_resent_do_not_count_again(videos):
    video, row = _video(videos)
    backend = Replies([([80, 10, 10, 10, 10, 10, 10], 0), ([10] * 9, 0)])
    r = explore(video, backend, row["question"], row["options"], SearchConfig(frame_budget=16, max_expansions=1))
    second = backend.calls[1]
    assert len(second.frames) > 8 + 2  # memory frames re-sent beside the expanded segment's
    assert r.frames_used == 16


def test_unreadable_replies_are_counted_and_survived(videos):
    video, row = _video(videos)
    backend = Scripted(row["truth"], malformed=1.0)
    r = explore(video, backend, row["question"], row["options"], SearchConfig())
    assert r.malformed == r.calls and not r.answer_parsed and r.answer in "ABCD"
    assert r.stop in ("max_expansions", "frame_budget")  # sufficiency falls back to 0: it keeps looking


def test_the_scripted_viewer_finds_the_needle_uniform_sampling_steps_over(videos):
    out, rows = videos
    vca_seen = uni_seen = 0
    for row in rows:
        video = open_video(out / row["video"])
        n = row["truth"]["needle"]
        r = explore(video, Scripted(row["truth"]), row["question"], row["options"], SearchConfig(frame_budget=20))
        u = uniform(video, Scripted(row["truth"]), row["question"], row["options"], 20)
        vca_seen += any(n["start"] <= t < n["end"] for t in r.answer_times)
        uni_seen += any(n["start"] <= t < n["end"] for t in u.answer_times)
        if any(n["start"] <= t < n["end"] for t in r.answer_times):
            assert r.answer == row["answer"] and iou(r.interval, [n["start"], n["end"]]) > 0
    assert vca_seen >= 3 and uni_seen <= 1  # of 4 videos: 120 s, a 2 s needle, 20 frames each


def test_the_tree_json_reloads(videos, tmp_path):
    video, row = _video(videos)
    r = explore(video, Scripted(row["truth"], noise=0.3), row["question"], row["options"], SearchConfig())
    r.tree.save(tmp_path / "t.json", {"question": row["question"]})
    tree, extra = load_tree(tmp_path / "t.json")
    assert extra["question"] == row["question"]
    assert tree.to_json() == r.tree.to_json()
    a, b = r.tree.pop(0.0), tree.pop(0.0)
    assert (a.id, a.score) == (b.id, b.score)


def test_iou_and_cells():
    assert iou([0, 10], [5, 15]) == pytest.approx(5 / 15)
    assert iou(None, [1, 2]) == 0.0 and iou([0, 1], [2, 3]) == 0.0
    assert cell(10.0, [0.0, 10.0, 30.0], 40.0) == [5.0, 20.0]
    assert cell(0.0, [0.0, 10.0], 40.0) == [0.0, 5.0] and cell(10.0, [0.0, 10.0], 40.0) == [5.0, 40.0]


@pytest.mark.parametrize("text, n, relevance, sufficiency", [
    ("frames: red, red\nrelevance: 10 80 30\nsufficient: 70", 3, [0.1, 0.8, 0.3], 0.7),
    ('```json\n{"relevance": [10, 90], "sufficient": 0.4}\n```', 2, [0.1, 0.9], 0.4),
    ("Segment 1: 20\nSegment 2: 100\nSufficiency: yes", 2, [0.2, 1.0], 1.0),
    ("relevance: [25%, 75%]\nsufficient: 150", 2, [0.25, 0.75], 1.0),
    ("relevance: 10 20\nsufficient: 5", 3, None, 0.05),  # a wrong count is unusable, not padded
    ("I cannot tell.", 2, None, None),
    ('{"relevance": [1, 2', 2, None, None),
])
def test_score_parser(text, n, relevance, sufficiency):
    s = parse_scores(text, n)
    assert s.relevance == (pytest.approx(relevance) if relevance else None)
    assert s.sufficiency == (pytest.approx(sufficiency) if sufficiency is not None else None)


@pytest.mark.parametrize("text, letter, evidence", [
    ("frames: ...\nanswer: C\nevidence: 4", "C", 4),
    ('{"answer": "b", "evidence": 2}', "B", None),
    ("Answer: (D) because frame 3", "D", None),
    ("answer: 7\nevidence: Frame 2", "C", 2),  # the option's text instead of its letter
    ("answer: E\nevidence: 99", None, None),  # no such option, no such frame
    ("garbage", None, None),
])
def test_answer_parser(text, letter, evidence):
    a = parse_answer(text, ["3", "5", "7", "9"], [1, 2, 3, 4])
    assert (a.letter, a.evidence) == (letter, evidence)


def test_bad_videos_are_one_line(tmp_path):
    from mmthink.errors import UserError

    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "junk.mp4").write_bytes(b"\x00\x01not a video" * 100)
    (tmp_path / "frames").mkdir()
    for name, message in (("nope.mp4", "no such file"), ("empty.mp4", "empty"), ("junk.mp4", "cannot be read as a video"),
                          ("frames", "holds no frames")):
        with pytest.raises(UserError, match=message):
            open_video(tmp_path / name)


def test_a_folder_of_frames_with_timestamps(tmp_path):
    from PIL import Image

    from mmthink.errors import UserError

    for k, colour in enumerate([(255, 0, 0), (0, 255, 0), (0, 0, 255)]):
        Image.new("RGB", (32, 32), colour).save(tmp_path / f"f{k}.png")
    (tmp_path / "timestamps.txt").write_text("0\n4.5\n20\n")
    video = open_video(tmp_path)
    assert video.times == [0.0, 4.5, 20.0] and video.index(10.0) == 1
    assert video.frame(video.index(21.0)).getpixel((0, 0)) == (0, 0, 255)
    (tmp_path / "timestamps.txt").write_text("0\n4.5\n")
    with pytest.raises(UserError, match="one increasing timestamp per frame"):
        open_video(tmp_path)


def test_needle_row_truth_is_consistent(videos):
    _, rows = videos
    for row in rows:
        t = row["truth"]
        scene = t["scenes"][t["scene"]]
        assert scene["start"] <= t["needle"]["start"] < t["needle"]["end"] <= scene["end"]
        assert scene["colour"] in row["question"]
        assert row["options"][" ABCD".index(row["answer"]) - 1] == str(t["needle"]["digit"])
        assert Path(videos[0] / row["video"]).is_file()


def test_an_open_question_gets_the_text_answer(videos):
    answered = []
    for k in range(len(videos[1])):
        video, row = _video(videos, k)
        r = explore(video, Scripted(row["truth"]), row["question"], [], SearchConfig(frame_budget=40))
        n = row["truth"]["needle"]
        seen = any(n["start"] <= t < n["end"] for t in r.answer_times)
        assert r.answer_parsed and r.answer == (str(n["digit"]) if seen else "no digit seen")
        answered.append(seen)
    assert sum(answered) >= 3  # the digit itself, not only the fallback text, is what is answered
    video, row = _video(videos)
    r = explore(video, Scripted(row["truth"], malformed=1.0), row["question"], [], SearchConfig())
    assert r.answer == "" and not r.answer_parsed  # nothing readable: no guess to make


def test_timestamps_restrict_the_candidate_frames(videos):
    from mmthink.data.video import read_timestamps
    from mmthink.errors import UserError

    out, rows = videos
    stamps = [0.0, 10.2, 30.0, 61.0, 90.5, 119.0]
    video = open_video(out / rows[0]["video"], timestamps=stamps)
    assert video.times == [0.0, 10.0, 30.0, 61.0, 90.5, 119.0] and video.duration == pytest.approx(120.0)
    r = explore(video, Scripted(rows[0]["truth"]), rows[0]["question"], rows[0]["options"],
                SearchConfig(initial_frames=4, frame_budget=20))
    assert set(r.tree.frames.values()) <= set(video.times) and r.frames_used <= len(stamps)
    assert read_timestamps("1.5, 3,10") == [1.5, 3.0, 10.0]
    with pytest.raises(UserError, match="outside the video"):
        open_video(out / rows[0]["video"], timestamps=[500.0])
    with pytest.raises(UserError, match="numbers of seconds"):
        read_timestamps("a,b")


def test_data_video_refuses_a_needle_longer_than_half_a_scene(cli, tmp_path):
    res = cli("data", "video", "--out", tmp_path / "v", "--needle", "30")
    assert res.exit_code == 2 and "--needle must be positive" in res.stderr


def test_a_one_frame_folder_is_answered_without_a_search(tmp_path):
    from PIL import Image

    Image.new("RGB", (32, 32), (0, 0, 255)).save(tmp_path / "only.png")
    video = open_video(tmp_path)
    backend = Replies([])
    r = explore(video, backend, "What colour?", ["red", "blue"], SearchConfig())
    assert r.stop == "one_frame" and r.calls == 1 and backend.calls[0].kind == "answer" and r.frames_used == 1
