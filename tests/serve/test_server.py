"""mmthink serve against the real ``openai`` client on 127.0.0.1: routes, fields, streaming, errors."""

import base64
import io
import json
import threading
import time

import httpx
import openai
import pytest
import torch

from mmthink.serve.api import create_app
from mmthink.serve.cli import serve_in_thread, start_engine
from mmthink.serve.model import load_served
from mmthink.serve.telemetry import Telemetry

KEY = "test-key"


def _start(served, max_concurrent=8, max_queue=16, **kw):
    tel = Telemetry()
    engine = start_engine(served, max_concurrent, max_queue, tel)
    server, url = serve_in_thread(create_app(served, engine, api_key=KEY, telemetry=tel, **kw))
    return server, engine, url


@pytest.fixture(scope="module")
def text_server():
    served = load_served("tiny-llama", None, "float32", None, 512, False)
    server, engine, url = _start(served, max_body_bytes=64 * 1024)
    yield served, engine, url
    server.should_exit = True
    engine.close()


@pytest.fixture
def client(text_server):
    return openai.OpenAI(base_url=text_server[2] + "/v1", api_key=KEY, max_retries=0)


def _post(url, path, body, key=KEY):
    return httpx.post(url + path, json=body, headers={"authorization": f"Bearer {key}"}, timeout=60)


def test_models_and_the_api_key(text_server, client):
    _, _, url = text_server
    assert [m.id for m in client.models.list()] == ["tiny-llama"]
    for key in ("wrong", None):
        headers = {"authorization": f"Bearer {key}"} if key else {}
        r = httpx.get(url + "/v1/models", headers=headers)
        assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=url + "/v1", api_key="wrong", max_retries=0).models.list()
    assert httpx.get(url + "/health").json() == {"status": "ok"}  # health needs no key


def test_greedy_completion_with_logprobs_matches_a_full_forward(text_server, client):
    served, _, _ = text_server
    r = client.completions.create(model="tiny-llama", prompt="one two three", max_tokens=6, temperature=0, logprobs=2)
    choice = r.choices[0]
    prompt = served.encode("one two three")
    assert r.usage.prompt_tokens == len(prompt) and r.usage.completion_tokens == 6
    assert choice.finish_reason == "length"
    with torch.no_grad():
        logits = served.model(input_ids=torch.tensor([prompt])).logits[0, -1]
    first = torch.log_softmax(logits.float(), -1)
    assert choice.logprobs.token_logprobs[0] == pytest.approx(first.max().item(), abs=1e-4)  # greedy: the argmax
    assert len(choice.logprobs.top_logprobs[0]) == 2
    assert choice.text == "".join(choice.logprobs.tokens)
    assert choice.logprobs.text_offset[1] == len(choice.logprobs.tokens[0])
    assert len(choice.logprobs.tokens) == 6


def test_echo_returns_prompt_logprobs(client):
    r = client.completions.create(model="tiny-llama", prompt="a b c", max_tokens=2, temperature=0, logprobs=1,
                                  echo=True)
    lp = r.choices[0].logprobs
    assert r.choices[0].text.startswith("a b c")
    assert lp.token_logprobs[0] is None and all(x is not None for x in lp.token_logprobs[1:])
    assert len(lp.tokens) == r.usage.prompt_tokens + 2


def test_chat_n_and_seed(client):
    msgs = [{"role": "user", "content": "Say something."}]
    a = client.chat.completions.create(model="tiny-llama", messages=msgs, max_tokens=8, n=3, seed=7, temperature=1.0)
    b = client.chat.completions.create(model="tiny-llama", messages=msgs, max_tokens=8, n=3, seed=7, temperature=1.0)
    texts = [c.message.content for c in a.choices]
    assert [c.index for c in a.choices] == [0, 1, 2]
    assert texts == [c.message.content for c in b.choices]  # the seed fixes every choice
    assert len(set(texts)) > 1  # but the choices differ from each other
    assert [c.finish_reason for c in a.choices] == ["length"] * 3 and a.usage.completion_tokens == 3 * 8


def test_stream_with_usage_equals_the_plain_answer(client):
    msgs = [{"role": "user", "content": "Count."}]
    plain = client.chat.completions.create(model="tiny-llama", messages=msgs, max_tokens=10, seed=3)
    chunks = list(client.chat.completions.create(model="tiny-llama", messages=msgs, max_tokens=10, seed=3,
                                                 stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == plain.usage.completion_tokens
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == plain.choices[0].finish_reason


def test_sse_ends_with_done(text_server):
    _, _, url = text_server
    with httpx.stream("POST", url + "/v1/completions", headers={"authorization": f"Bearer {KEY}"}, timeout=60,
                      json={"model": "tiny-llama", "prompt": "x y", "max_tokens": 3, "stream": True}) as r:
        lines = [line for line in r.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    assert all(line.startswith("data: ") for line in lines)


def test_stop_strings_cut_the_text(client):
    full = client.completions.create(model="tiny-llama", prompt="the cat", max_tokens=12, temperature=0).choices[0]
    assert len(full.text) > 6
    stop = full.text[4:7]
    cut = client.completions.create(model="tiny-llama", prompt="the cat", max_tokens=12, temperature=0,
                                    stop=[stop]).choices[0]
    assert cut.finish_reason == "stop"
    assert cut.text == full.text[: full.text.find(stop)]
    streamed = client.completions.create(model="tiny-llama", prompt="the cat", max_tokens=12, temperature=0,
                                         stop=stop, stream=True)
    assert "".join(c.choices[0].text for c in streamed if c.choices) == cut.text


@pytest.mark.parametrize("body, status, param", [
    ({"prompt": "x", "temperature": 5}, 400, "temperature"),
    ({"prompt": "x", "n": 0}, 400, "n"),
    ({"prompt": "x", "max_tokens": 100000}, 400, "max_tokens"),
    ({"prompt": "x", "logprobs": 50}, 400, "logprobs"),
    ({"prompt": [10**9]}, 400, "prompt"),
    ({"prompt": "x", "stop": ["a", "b", "c", "d", "e"]}, 400, "stop"),
    ({"prompt": "x", "latent_mode": "zeros"}, 400, "latent_mode"),  # not a latent checkpoint
    ({}, 400, "prompt"),
])
def test_bad_completion_fields_are_400_naming_the_field(text_server, body, status, param):
    _, _, url = text_server
    r = _post(url, "/v1/completions", {"model": "tiny-llama", **body})
    assert r.status_code == status, r.text
    assert r.json()["error"]["param"] == param


def test_errors_in_openai_shape(text_server):
    _, _, url = text_server
    r = _post(url, "/v1/completions", {"model": "other", "prompt": "x"})
    assert r.status_code == 404 and "tiny-llama" in r.json()["error"]["message"]
    assert httpx.get(url + "/v1/nothing", headers={"authorization": f"Bearer {KEY}"}).status_code == 404
    r = httpx.post(url + "/v1/completions", content=b"{not json", timeout=10,
                   headers={"authorization": f"Bearer {KEY}", "content-type": "application/json"})
    assert r.status_code == 400 and "error" in r.json()
    r = _post(url, "/v1/completions", {"model": "tiny-llama", "prompt": "x" * 70_000})
    assert r.status_code == 413
    r = _post(url, "/v1/chat/completions", {"model": "tiny-llama", "messages": [
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "/etc/passwd"}}]}]})
    assert r.status_code == 400  # a text model takes no images; no file path is ever opened
    r = _post(url, "/v1/chat/completions", {"model": "tiny-llama", "messages": []})
    assert r.status_code == 400 and r.json()["error"]["param"] == "messages"


def test_tokenize_info_and_metrics(text_server):
    served, _, url = text_server
    r = _post(url, "/tokenize", {"prompt": "one two"}).json()
    assert r["tokens"] == served.encode("one two") and r["count"] == len(r["tokens"])
    tagged = httpx.get(url + "/info", headers={"authorization": f"Bearer {KEY}", "x-request-id": "abc-1"})
    assert tagged.headers["x-request-id"] == "abc-1"  # a client's request id comes back; otherwise one is made
    assert len(httpx.get(url + "/health").headers["x-request-id"]) == 32
    info = tagged.json()
    assert info["max_total_tokens"] == 512 and info["latent_decoding"] is False
    _post(url, "/v1/completions", {"model": "tiny-llama", "prompt": "x", "max_tokens": 2})
    text = httpx.get(url + "/metrics").text
    assert 'mmthink_requests_total{route="/v1/completions",status="200"}' in text
    assert "mmthink_generation_tokens_total" in text and "mmthink_time_to_first_token_seconds_count" in text


def test_a_client_that_leaves_frees_its_row(text_server):
    _, engine, url = text_server
    with httpx.stream("POST", url + "/v1/completions", headers={"authorization": f"Bearer {KEY}"}, timeout=60,
                      json={"model": "tiny-llama", "prompt": "go", "max_tokens": 400, "stream": True}) as r:
        next(r.iter_lines())
    deadline = time.monotonic() + 10
    while engine.running and time.monotonic() < deadline:
        time.sleep(0.05)
    assert engine.running == 0


def test_a_full_queue_answers_429():
    served = load_served("tiny-llama", None, "float32", None, 512, False)
    server, engine, url = _start(served, max_concurrent=1, max_queue=0)
    try:
        results = []
        body = {"model": "tiny-llama", "prompt": "go", "max_tokens": 300}
        first = threading.Thread(target=lambda: results.append(_post(url, "/v1/completions", body).status_code))
        first.start()
        deadline = time.monotonic() + 10
        while not engine.running and time.monotonic() < deadline:
            time.sleep(0.01)
        second = _post(url, "/v1/completions", dict(body, max_tokens=2))
        assert second.status_code == 429 and second.json()["error"]["type"] == "rate_limit_error"
        first.join()
        assert results == [200]
    finally:
        server.should_exit = True
        engine.close()


def _png(color) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (56, 56), color).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def test_a_mirage_checkpoint_serves_what_eval_mirage_decodes(tmp_path):
    from mmthink.methods.mirage.config import LATENT_TOKENS
    from mmthink.methods.mirage.data import ImageRoots
    from mmthink.methods.mirage.evaluate import generate_answers
    from mmthink.models.config import ModelConfig
    from mmthink.models.loading import load_model
    from mmthink.ops.latent import LatentTokens
    from PIL import Image

    run = tmp_path / "run"
    loaded = load_model(ModelConfig(name="tiny-qwen2.5-vl", special_tokens=LATENT_TOKENS), train=False)
    loaded.model.save_pretrained(run / "model")
    loaded.tokenizer.save_pretrained(run / "model")
    loaded.image_processor.save_pretrained(run / "model")
    (run / "stage2").mkdir()
    (run / "stage2" / "resolved_config.yaml").write_text("method: mirage\nlatent: {k: 2, max_len: 3}\n")
    Image.new("RGB", (56, 56), (200, 30, 90)).save(tmp_path / "map.png")
    row = {"text_input": "<image>\nWhere to go?", "image_input": "map.png"}
    (tmp_path / "rows.jsonl").write_text(json.dumps(row) + "\n")

    served = load_served(str(run / "model"), None, "float32", None, 2048, False)
    assert served.latent is not None and served.latent_defaults.k == 2
    model = served.model
    lt = LatentTokens.from_tokenizer(served.tokenizer)
    answers, steps = generate_answers(model, served.tokenizer, served.processor, [row],
                                      ImageRoots(tmp_path / "rows.jsonl"), lt, 2, 12, 1, 3, min_latent=2)
    server, engine, url = _start(served)
    try:
        r = _post(url, "/v1/chat/completions", {"model": str(run / "model"), "max_tokens": 12, "temperature": 0,
                                                 "messages": [{"role": "user", "content": [
                                                     {"type": "image_url", "image_url": {"url": _png((200, 30, 90))}},
                                                     {"type": "text", "text": "\nWhere to go?"}]}]})
        assert r.status_code == 200, r.text
        choice = r.json()["choices"][0]
        assert choice["message"]["content"] == answers[0]
        assert choice["latent_steps"] == steps[0]
        # A prompt that opens a latent block: latent steps decode (hidden from the text), bounded by latent_max_len.
        ids = served.encode("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<|latent_start|>")
        r = _post(url, "/v1/completions", {"model": str(run / "model"), "prompt": ids, "max_tokens": 4,
                                            "temperature": 0, "latent_max_len": 2}).json()
        assert r["choices"][0]["latent_steps"] == 2
        assert "<|latent" not in r["choices"][0]["text"]
        assert r["usage"]["completion_tokens"] == 4  # text tokens only
    finally:
        server.should_exit = True
        engine.close()


@pytest.mark.parametrize("args, message", [
    (["--model", "no/such/model/here"], "model path not found"),
    (["--model", "tiny-llama", "--dtype", "float8"], "model.dtype"),
    (["--model", "tiny-llama", "--recipe", "missing.yaml"], "recipe not found"),
    (["--model", "tiny-llama", "--max-total-tokens", "10", "--max-input-tokens", "20"], "max-input-tokens"),
])
def test_serve_refuses_bad_input_in_one_line(cli, args, message):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    res = cli("serve", "--port", port, *args)
    assert res.exit_code == 2 and message in res.stderr, res.stderr
    assert "Traceback" not in res.stderr


def test_the_command_serves_until_interrupted(tmp_path):
    import os
    import signal
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, MMTHINK_API_KEY=KEY)
    proc = subprocess.Popen([sys.executable, "-m", "mmthink.cli", "serve", "--model", "tiny-llama", "--port", str(port),
                             "--max-total-tokens", "256"], env=env, stderr=subprocess.PIPE, text=True,
                            # a suite started as a background job (nohup ... &) ignores SIGINT, and so would the child
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        r = _post(url, "/v1/completions", {"model": "tiny-llama", "prompt": "hi", "max_tokens": 3})
        assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 3
        assert _post(url, "/v1/completions", {"model": "tiny-llama", "prompt": "hi"}, key="nope").status_code == 401
        # Another server on the same port is refused in one line.
        other = subprocess.run([sys.executable, "-m", "mmthink.cli", "serve", "--model", "tiny-llama", "--port",
                                str(port)], capture_output=True, text=True, timeout=60)
        assert other.returncode == 2 and "cannot listen on" in other.stderr
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err  # Ctrl-C: a graceful shutdown, then the shell's code for SIGINT
    assert "ready on" in err and "shutdown complete" in err


def test_health_is_503_while_the_model_loads():
    server, url = serve_in_thread(create_app(None, None, api_key=KEY))
    try:
        r = httpx.get(url + "/health")
        assert r.status_code == 503 and r.json()["error"]["type"] == "service_unavailable"
        assert _post(url, "/v1/completions", {"model": "m", "prompt": "x"}).status_code == 503
    finally:
        server.should_exit = True


def test_special_tokens_are_hidden_unless_asked(client):
    # e.g. Satori's meta-action tokens are special tokens: hidden by default, shown with skip_special_tokens=false
    shown = client.completions.create(model="tiny-llama", prompt="<|im_start|>hi", max_tokens=1, echo=True,
                                      extra_body={"skip_special_tokens": False})
    hidden = client.completions.create(model="tiny-llama", prompt="<|im_start|>hi", max_tokens=1, echo=True)
    assert shown.choices[0].text.startswith("<|im_start|>hi")
    assert hidden.choices[0].text.startswith("hi")


def test_lora_and_qlora_adapter_folders_are_served(tmp_path, cli):
    tiny = "recipes/tiny/sft.yaml"
    common = ["runner.max_steps=2", "runner.save_every=0", "data.eval_file=null", "logging.progress=none"]
    assert cli("train", "sft", "--recipe", tiny, "model.lora.enabled=true", *common,
               f"output_dir={tmp_path / 'lora'}").exit_code == 0
    assert cli("train", "sft", "--recipe", tiny, "model.lora.enabled=true", "model.quantization.bits=4", *common,
               f"output_dir={tmp_path / 'qlora'}").exit_code == 0
    texts = {}
    for name, bits in ((tmp_path / "lora" / "adapter", None), (tmp_path / "lora" / "model", None),
                       (tmp_path / "qlora" / "adapter", 4)):
        served = load_served(str(name), None, "float32", None, 256, False, served_name="m", bits=bits)
        server, engine, url = _start(served)
        try:
            r = _post(url, "/v1/completions", {"model": "m", "prompt": "1 + 1 =", "max_tokens": 5, "temperature": 0})
            assert r.status_code == 200, r.text
            texts[(name.parent.name, name.name)] = r.json()["choices"][0]["text"]
        finally:
            server.should_exit = True
            engine.close()
    assert texts[("lora", "adapter")] == texts[("lora", "model")]  # the adapter on its base = the merged model


def test_several_prompts_in_one_completion_request(client):
    both = client.completions.create(model="tiny-llama", prompt=["one two", "three"], max_tokens=4, temperature=0, n=2)
    assert [c.index for c in both.choices] == [0, 1, 2, 3]
    for k, prompt in enumerate(["one two", "three"]):
        alone = client.completions.create(model="tiny-llama", prompt=prompt, max_tokens=4, temperature=0)
        assert both.choices[2 * k].text == alone.choices[0].text == both.choices[2 * k + 1].text
    assert both.usage.completion_tokens == 16
