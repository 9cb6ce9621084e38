"""mmthink serve in EvoScale mode: a chat request runs the loop through the engine and gets one answer."""

import httpx
import pytest

from mmthink.serve.cli import serving
from mmthink.serve.model import load_served

MSGS = [{"role": "user", "content": "Write a function f that returns 1."}]


@pytest.fixture(scope="module")
def url():
    served = load_served("tiny-llama", "recipes/tiny/evoscale.yaml", "float32", None, 1024, False)
    with serving(served, 4, 8) as base:
        yield base


def _chat(url, **body):
    return httpx.post(url + "/v1/chat/completions", timeout=120,
                      json={"model": "tiny-llama", "messages": MSGS, "max_tokens": 6, **body})


def test_a_request_runs_m_times_t_samples_and_answers_once(url):
    assert httpx.get(url + "/info").json()["mode"] == "evoscale"
    r = _chat(url, seed=3, evoscale={"k": 1, "m": 3, "t": 2, "tests": "assert f() == 1\nassert f() + 1 == 2"})
    assert r.status_code == 200, r.text
    body = r.json()
    ev = body["evoscale"]
    assert ev["samples"] == 6 and ev["scorer"] == "tests" and len(ev["iteration_best_score"]) == 2
    assert 0.0 <= ev["answer"]["score"] <= 1.0 and ev["answer"]["score"] == max(ev["iteration_best_score"])
    assert len(body["choices"]) == 1 and isinstance(body["choices"][0]["message"]["content"], str)
    assert 6 <= body["usage"]["completion_tokens"] <= 6 * 6 and body["usage"]["prompt_tokens"] > 0
    again = _chat(url, seed=3, evoscale={"k": 1, "m": 3, "t": 2, "tests": "assert f() == 1\nassert f() + 1 == 2"})
    assert again.json()["choices"][0]["message"]["content"] == body["choices"][0]["message"]["content"]


def test_without_tests_the_recipe_s_loop_self_evolves(url):
    body = _chat(url, seed=1, evoscale={"m": 2, "t": 2, "k": 2}).json()
    assert body["evoscale"]["scorer"] == "none" and body["evoscale"]["samples"] == 4
    assert body["evoscale"]["answer"] == {"iteration": 1, "index": 0}


@pytest.mark.parametrize("extra, param", [
    ({"evoscale": {"k": 3, "m": 2}}, "evoscale.k"),
    ({"evoscale": {"m": 5}}, "evoscale.m"),  # more than the 4 rows decoded at once
    ({"evoscale": {"tests": "x = 1"}}, "evoscale.tests"),
    ({"stream": True}, "stream"),
    ({"n": 2}, "n"),
])
def test_bad_settings_are_a_400_naming_the_field(url, extra, param):
    r = _chat(url, **extra)
    assert r.status_code == 400 and r.json()["error"]["param"] == param


def test_unknown_evoscale_fields_are_refused(url):
    r = _chat(url, evoscale={"m": 2, "budget": 9})
    assert r.status_code == 400 and "budget" in r.text


def test_a_plain_server_refuses_an_evoscale_request():
    served = load_served("tiny-llama", None, "float32", None, 512, False)
    with serving(served, 2, 2) as base:
        r = _chat(base, evoscale={"m": 2})
        assert r.status_code == 400 and r.json()["error"]["param"] == "evoscale"
        assert httpx.get(base + "/info").json()["mode"] is None
