"""Calibrated confidences from mmthink serve --calibrator: a Thermometer calibrator applied per request."""

import httpx
import pytest
import torch

from mmthink.errors import UserError
from mmthink.methods.thermometer.model import Thermometer, dataset_temperature, save_calibrator
from mmthink.methods.thermometer.prompting import render_prompt
from mmthink.methods.thermometer.scoring import forward_last
from mmthink.methods.thermometer.serving import load
from mmthink.serve.cli import serving
from mmthink.serve.model import load_served


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    served = load_served("tiny-llama", None, "float32", None, 512, False)
    d = served.model.get_input_embeddings().weight.shape[1]
    torch.manual_seed(0)
    folder = save_calibrator(tmp_path_factory.mktemp("cal") / "calibrator", Thermometer(d, 8),
                             {"features": {"scoring": "cloze", "chat": True}})
    served.scorer = load(folder, served.model, served.tokenizer)
    with serving(served, 4, 8) as url:
        yield served, folder, url


def test_each_option_gets_softmax_of_scores_over_the_calibrated_temperature(calibrated):
    served, folder, url = calibrated
    options = ["Paris", "Rome", "Berlin"]
    r = httpx.post(url + "/v1/chat/completions", timeout=60, json={
        "model": "tiny-llama", "messages": [{"role": "user", "content": "What is the capital of France?"}],
        "options": options}).json()
    assert [c["message"]["content"] for c in r["choices"]] == options
    conf = torch.tensor([c["confidence"] for c in r["choices"]], dtype=torch.float64)
    assert conf.sum().item() == pytest.approx(1.0)
    # the same numbers computed here, the way `calibrate features` / `calibrate apply` compute them
    prompt = render_prompt(served.tokenizer, {"question": "What is the capital of France?", "options": options},
                           True, "cloze")
    feats, scores = forward_last(served.model, served.tokenizer, [prompt], True, options=[options])
    tau = dataset_temperature(served.scorer.calibrator, feats)
    assert r["calibration"]["temperature"] == pytest.approx(tau, rel=1e-5)
    expected = torch.softmax(scores[0].double() / tau, -1)
    assert torch.allclose(conf, expected, atol=1e-5)
    assert r["calibration"]["answer"] == int(expected.argmax())
    assert r["choices"][0]["probability"] == pytest.approx(torch.softmax(scores[0].double(), -1)[0].item(), abs=1e-5)


def test_completions_take_the_question_as_prompt(calibrated):
    _, _, url = calibrated
    r = httpx.post(url + "/v1/completions", timeout=60,
                   json={"model": "tiny-llama", "prompt": "2 + 2 =", "options": ["3", "4"]}).json()
    assert [c["text"] for c in r["choices"]] == ["3", "4"] and r["usage"]["completion_tokens"] == 0
    bad = httpx.post(url + "/v1/completions", timeout=60, json={"model": "tiny-llama", "prompt": "q", "options": ["a"]})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "options"


def test_options_without_a_calibrator_and_a_mismatched_one_are_refused(calibrated, tmp_path):
    served, _, _ = calibrated
    plain = load_served("tiny-llama", None, "float32", None, 512, False)
    with serving(plain, 2, 2) as url:
        r = httpx.post(url + "/v1/completions", timeout=60,
                       json={"model": "tiny-llama", "prompt": "q", "options": ["a", "b"]})
        assert r.status_code == 400 and "--calibrator" in r.json()["error"]["message"]
    wrong = save_calibrator(tmp_path / "wrong", Thermometer(7, 4), {})
    with pytest.raises(UserError, match="hidden size"):
        load(wrong, served.model, served.tokenizer)
