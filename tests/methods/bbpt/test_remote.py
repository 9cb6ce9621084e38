"""The HTTP black box answers exactly what the local one does, and every failure is one clear line."""
import json
import socket
import time
import urllib.error
import urllib.request

import pytest
import torch

from mmthink.errors import UserError
from mmthink.methods.bbpt import remote
from mmthink.methods.bbpt.blackbox import HFBlackBox, LabelOnly
from mmthink.methods.bbpt.remote import RemoteBlackBox, decode_array, encode_array, load_box, serve_blackbox
from mmthink.models.presets import build_tiny

TEXTS = ["a fine film", "dull and far too long", "ok"]


@pytest.fixture(scope="module")
def box():
    m, tok, _ = build_tiny("tiny-llama", 0)
    return HFBlackBox(m, tok, "{text} It was {mask}", ["bad", "good"], n_prompt_tokens=4)


def _url(server) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture
def serve():
    """serve(box) -> url of a running server; every server is shut down after the test."""
    servers = []

    def start(b):
        servers.append(serve_blackbox(b))
        return _url(servers[-1])

    yield start
    for s in servers:
        s.shutdown()
        s.server_close()


def _post(url: str, body: bytes) -> tuple[int, dict]:
    req = urllib.request.Request(url + "/query", data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_array_round_trip_is_exact():
    t = torch.randn(2, 3, 5)
    assert torch.equal(decode_array(json.loads(json.dumps(encode_array(t))), 3), t)
    with pytest.raises(ValueError, match="bytes"):
        decode_array({"shape": [2, 3, 4], "data": encode_array(t)["data"]}, 3)


def test_remote_answers_equal_local(box, serve):
    url = serve(box)
    rb = RemoteBlackBox(url)
    assert rb.info == box.info
    prompts = torch.randn(3, 4, box.info.embed_dim) * box.info.embedding_std
    for p in (prompts, None):
        local, got = box.logits(p, TEXTS), rb.logits(p, TEXTS)
        assert got.shape == local.shape == (1 if p is None else 3, len(TEXTS), 2)
        assert torch.allclose(got, local, atol=1e-6)
        assert torch.equal(rb.labels(p, TEXTS), box.labels(p, TEXTS))
    assert (rb.calls, rb.queries) == (4, 2 * (3 * 3) + 2 * 3)


def test_wrong_prompt_shape(box, serve):
    rb = RemoteBlackBox(serve(box))
    with pytest.raises(ValueError, match="prompts must be"):  # the base class checks before sending
        rb.logits(torch.zeros(1, 5, box.info.embed_dim), TEXTS)
    with pytest.raises(UserError, match="HTTP 400"):  # a server checks again for clients that don't
        rb._logits(torch.zeros(1, 5, box.info.embed_dim), TEXTS)
    assert rb.queries == 0


def test_labels_level_server_refuses_logits(box, serve):
    rb = RemoteBlackBox(serve(LabelOnly(box)))
    assert rb.info.level == "labels"
    p = torch.randn(2, 4, box.info.embed_dim)
    assert torch.equal(rb.labels(p, TEXTS), box.labels(p, TEXTS))
    with pytest.raises(UserError, match="labels"):
        rb.logits(p, TEXTS)
    with pytest.raises(UserError, match=r"HTTP 403.*labels only"):  # bypass the client-side check
        rb._logits(p, TEXTS)


def test_dead_url_is_a_quick_user_error():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.monotonic()
    with pytest.raises(UserError, match=rf"127\.0\.0\.1:{port}/info is unreachable after 3 tries"):
        RemoteBlackBox(f"http://127.0.0.1:{port}/", timeout=2, retries=2, backoff=0.01)
    assert time.monotonic() - start < 5
    with pytest.raises(UserError, match="http://"):
        RemoteBlackBox(f"127.0.0.1:{port}")


def test_malformed_requests_get_400(box, serve):
    url = serve(box)
    status, ans = _post(url, b"{not json")
    assert status == 400 and "JSON" in ans["error"]
    status, ans = _post(url, json.dumps({"texts": ["x"], "want": "logits"}).encode())
    assert status == 400 and "prompts" in ans["error"]
    bad_b64 = {"prompts": {"shape": [1, 4, box.info.embed_dim], "data": "!!"}, "texts": ["x"], "want": "logits"}
    status, ans = _post(url, json.dumps(bad_b64).encode())
    assert status == 400 and "base64" in ans["error"]
    status, ans = _post(url, json.dumps({"prompts": None, "texts": "x", "want": "logits"}).encode())
    assert status == 400 and "texts" in ans["error"]


def test_oversized_request_gets_413(box, serve, monkeypatch):
    url = serve(box)
    monkeypatch.setattr(remote, "MAX_BODY", 100)
    status, ans = _post(url, json.dumps({"prompts": None, "texts": ["x" * 200], "want": "labels"}).encode())
    assert status == 413 and "limit" in ans["error"]


def test_load_box_serves_the_tiny_preset():
    b = load_box("tiny-llama", "{text} It was {mask}", ["bad", "great"], 10, "labels")
    assert (b.info.n_classes, b.info.n_prompt_tokens, b.info.level) == (2, 10, "labels")


def test_every_malformed_request_is_a_4xx_json_error(box, serve):
    url = serve(box)
    prompts = {"shape": [1, 4, box.info.embed_dim], "data": encode_array(torch.full((1, 4, box.info.embed_dim),
                                                                               float("nan")))["data"]}
    cases = [
        (b'{"texts": ["\xff\xfe"]}', 400, "UTF-8"),
        (b"[" * 100_000, 400, "nested too deeply"),
        (json.dumps({"prompts": prompts, "texts": ["x"], "want": "logits"}).encode(), 400, "NaN"),
        (json.dumps({"prompts": None, "texts": [], "want": "logits"}).encode(), 400, "must not be empty"),
        (json.dumps({"prompts": None, "texts": ["x" * 1_000_000], "want": "labels"}).encode(), 413, "characters"),
    ]
    for body, status, text in cases:
        got, ans = _post(url, body)
        assert got == status and text in ans["error"], (body[:40], got, ans)
    for method in ("PUT", "DELETE"):
        req = urllib.request.Request(url + "/query", data=b"{}", method=method)
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=10)
        assert e.value.code == 405 and "not allowed" in json.loads(e.value.read())["error"]


def test_the_server_refuses_a_negative_prompt_length(capsys):
    with pytest.raises(SystemExit) as e:
        remote.main(["--model", "tiny-llama", "--n-prompt-tokens", "-3"])
    assert e.value.code == 2 and "--n-prompt-tokens must be >= 1" in capsys.readouterr().err
