"""Samplers: local continuous batching and an OpenAI-compatible endpoint give the same completions."""

import pytest

from mmthink.errors import UserError
from mmthink.ops.sampler import EndpointSampler, LocalSampler
from mmthink.serve.api import create_app
from mmthink.serve.cli import serve_in_thread, start_engine
from mmthink.serve.model import load_served
from mmthink.serve.telemetry import Telemetry

PROMPTS = ["Say a number.", "Name a colour, please.", "Hi"]


@pytest.fixture(scope="module")
def served():
    return load_served("tiny-llama", None, "float32", None, 512, False)


def test_local_samples_do_not_depend_on_the_batch(served):
    sampler = LocalSampler(served.model, served.tokenizer, batch_rows=8)
    full = sampler.sample(PROMPTS, 3, 8, temperature=1.0, seed=5)
    assert [len(c) for c in full] == [3, 3, 3] and len({t for c in full for t in c}) > 3
    narrow = LocalSampler(served.model, served.tokenizer, batch_rows=2).sample(PROMPTS, 3, 8, temperature=1.0, seed=5)
    assert narrow == full  # rows joined at other times, in other company: the same text
    greedy = sampler.sample(PROMPTS, 2, 6, temperature=0.0)
    assert all(c[0] == c[1] for c in greedy)


def test_stop_strings_cut_local_samples(served):
    sampler = LocalSampler(served.model, served.tokenizer)
    full = sampler.sample(["Hi"], 1, 12, temperature=0.0)[0][0]
    stop = full[3:5]
    cut = sampler.sample(["Hi"], 1, 12, temperature=0.0, stop=[stop])[0][0]
    assert cut == full[: full.find(stop)]


def test_an_endpoint_gives_what_local_decoding_gives_greedy(served):
    tel = Telemetry()
    engine = start_engine(served, 8, 16, tel)
    server, url = serve_in_thread(create_app(served, engine, telemetry=tel))
    try:
        remote = EndpointSampler(url + "/v1", "tiny-llama").sample(PROMPTS, 2, 6, temperature=0.0)
        local = LocalSampler(served.model, served.tokenizer).sample(PROMPTS, 2, 6, temperature=0.0)
        assert remote == local
        # sampled too: the endpoint seeds choice j of prompt i as local decoding does
        remote = EndpointSampler(url + "/v1", "tiny-llama").sample(PROMPTS, 3, 6, temperature=1.0, seed=11)
        local = LocalSampler(served.model, served.tokenizer).sample(PROMPTS, 3, 6, temperature=1.0, seed=11)
        assert remote == local and len({t for c in local for t in c}) > 3
        with pytest.raises(UserError, match="answered 404"):
            EndpointSampler(url + "/v1", "other").sample(PROMPTS, 1, 2)
    finally:
        server.should_exit = True
        engine.close()
    with pytest.raises(UserError, match="cannot be reached"):
        EndpointSampler("http://127.0.0.1:9/v1", "m", timeout_s=2).sample(PROMPTS[:1], 1, 2)
