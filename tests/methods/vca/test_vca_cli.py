"""``mmthink video-explore`` and ``mmthink eval vca`` end to end: the scripted scorer, the tiny local VLM,
an OpenAI-compatible endpoint (images as data URLs), the reply cache, and bad input as one line."""

import base64
import io
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from typer.testing import CliRunner

    from mmthink.cli import app

    out = tmp_path_factory.mktemp("vcadata") / "d"
    res = CliRunner().invoke(app, ["data", "video", "--out", str(out), "--n", "3", "--duration", "90",
                                   "--scenes", "3", "--needle", "3", "--size", "48"])
    assert res.exit_code == 0, res.output
    return out


def test_eval_vca_with_the_scripted_scorer_writes_metrics_rows_and_timelines(cli, data, tmp_path):
    from PIL import Image

    res = cli("eval", "vca", "--data", data / "test.jsonl", "--recipe", "tiny/vca", "--out", tmp_path / "e",
              "backend.kind=scripted")
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "e" / "eval.json").read_text())
    assert report["rows"] == 3 and report["backend"] == "scripted"
    for s in ("vca", "uniform", "cluster"):
        assert 0.0 <= report[f"{s}/accuracy"] <= 1.0 and report[f"{s}/frames_used"] <= 20
    rows = [json.loads(x) for x in (tmp_path / "e" / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 9 and {r["strategy"] for r in rows} == {"vca", "uniform", "cluster"}
    png = tmp_path / "e" / "trees" / f"{rows[0]['id']}-vca.png"
    with Image.open(png) as im:
        assert im.size[0] > 400


def test_video_explore_with_the_tiny_vlm_survives_its_noise_and_caches_replies(cli, data, tmp_path):
    from mmthink.methods.vca.tree import load_tree

    video = data / "videos" / "test-0000.mp4"
    args = ("video-explore", video, "-q", "Which digit appears?", "--options", "1,2,3,4", "--recipe", "tiny/vca",
            "--out", tmp_path / "x", "--frame-budget", "10", "search.frames_per_expansion=2", "backend.max_new_tokens=8")
    res = cli(*args)
    assert res.exit_code == 0, res.output
    tree, extra = load_tree(tmp_path / "x" / "explore.json")
    assert extra["result"]["frames_used"] == len(tree.frames) <= 10
    assert extra["result"]["malformed"] >= 1  # a random VLM writes no scores: counted, and the search goes on
    assert (tmp_path / "x" / "explore.png").stat().st_size > 1000
    cached = (tmp_path / "x" / "replies.jsonl").read_text()
    assert len(cached.splitlines()) == extra["result"]["calls"]
    res = cli(*args)  # the same run again: every reply from the cache, the same exploration
    assert res.exit_code == 0, res.output
    assert (tmp_path / "x" / "replies.jsonl").read_text() == cached
    assert load_tree(tmp_path / "x" / "explore.json")[0].to_json() == tree.to_json()


class _Endpoint(BaseHTTPRequestHandler):
    bodies: list = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Endpoint.bodies.append(body)
        text = body["messages"][0]["content"][-1]["text"]
        n = text.count("\nSegment ")
        reply = (f"relevance: {' '.join(['50'] * n)}\nsufficient: 90" if n else "answer: B\nevidence: 1")
        out = json.dumps({"choices": [{"message": {"role": "assistant", "content": reply}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args):
        pass


def test_an_openai_compatible_endpoint_gets_the_frames_as_data_urls(cli, data, tmp_path):
    from PIL import Image

    server = HTTPServer(("127.0.0.1", 0), _Endpoint)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        res = cli("video-explore", data / "videos" / "test-0001.mp4", "-q", "Which digit?", "--options", "1,2,3",
                  "--endpoint", f"http://127.0.0.1:{server.server_port}/v1", "--model-name", "my-vlm",
                  "--out", tmp_path / "o")
    finally:
        server.shutdown()
    assert res.exit_code == 0, res.output
    assert "B (2)" in res.stdout
    first = _Endpoint.bodies[0]
    assert first["model"] == "my-vlm"
    images = [p for p in first["messages"][0]["content"] if p["type"] == "image_url"]
    assert len(images) == 8  # the root call: N = 8 uniform frames
    url = images[0]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    with Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))) as im:
        assert im.size == (48, 48)
    assert len(_Endpoint.bodies) == 2  # sufficient at once: one scoring call and the answer


@pytest.mark.parametrize("args, message", [
    (["{tmp}/nope.mp4", "-q", "x", "--backend", "scripted"], "no such file"),
    (["{tmp}/junk.mp4", "-q", "x", "--backend", "scripted"], "cannot be read as a video"),
    (["{video}", "-q", "x", "--options", "1"], "--options takes 2 to 8 options"),
    (["{video}", "-q", " ", "--backend", "scripted"], "--question is empty"),
    (["{video}", "-q", "x", "--backend", "magic"], "'backend.kind' must be one of"),
    (["{video}", "-q", "x", "--frame-budget", "4"], "must be at least search.initial_frames"),
])
def test_bad_input_is_one_line_and_exit_2(cli, data, tmp_path, args, message):
    (tmp_path / "junk.mp4").write_bytes(b"\x00not a video" * 50)
    args = [a.format(tmp=tmp_path, video=data / "videos" / "test-0000.mp4") for a in args]
    res = cli("video-explore", *args, "--out", tmp_path / "o")
    assert res.exit_code == 2, res.output
    assert message in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_scripted_needs_a_generated_video(cli, tmp_path):
    from PIL import Image

    (tmp_path / "f").mkdir()
    for k in range(3):
        Image.new("RGB", (32, 32), (k * 80, 0, 0)).save(tmp_path / "f" / f"{k}.png")
    res = cli("video-explore", tmp_path / "f", "-q", "x", "--backend", "scripted", "--out", tmp_path / "o",
              "search.initial_frames=2", "search.frame_budget=3")
    assert res.exit_code == 2 and "scripted backend perceives frames" in res.stderr


def test_eval_vca_names_a_bad_row(cli, data, tmp_path):
    rows = [json.loads(x) for x in (data / "test.jsonl").read_text().splitlines()]
    rows[1]["answer"] = "Z"
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(json.dumps(r) for r in rows))
    res = cli("eval", "vca", "--data", bad, "--recipe", "tiny/vca", "backend.kind=scripted", "--out", tmp_path / "e")
    assert res.exit_code == 2 and "bad.jsonl:2: field 'answer'" in res.stderr


def test_eval_of_a_trained_method_still_needs_a_checkpoint(cli, data):
    res = cli("eval", "sft", "--data", data / "test.jsonl")
    assert res.exit_code == 2 and "needs --checkpoint" in res.stderr
