"""A bounded loopback load test: 32 concurrent clients, a few hundred requests, malformed ones mixed in."""

import asyncio
import random
import resource

import httpx

from mmthink.serve.api import create_app
from mmthink.serve.cli import serve_in_thread, start_engine
from mmthink.serve.model import load_served
from mmthink.serve.telemetry import Telemetry

BAD = [
    {"prompt": "x", "temperature": -1},
    {"prompt": "x", "n": 99},
    {"prompt": [], "max_tokens": 2},
    {"messages": [{"role": "wizard", "content": "hi"}]},
    {"prompt": "x", "max_tokens": 0},
    {"prompt": "x", "top_p": 0},
]


def _requests(n: int, seed: int = 0):
    rng = random.Random(seed)
    out = []
    for i in range(n):
        if i % 7 == 3:
            out.append(("/v1/completions" if "prompt" in (b := rng.choice(BAD)) else "/v1/chat/completions", b, 400))
        elif i % 2:
            out.append(("/v1/chat/completions", {"messages": [{"role": "user", "content": f"question {i}"}],
                                                 "max_tokens": rng.randint(1, 6), "n": rng.choice([1, 2])}, 200))
        else:
            out.append(("/v1/completions", {"prompt": f"text {i} " * rng.randint(1, 5), "max_tokens": rng.randint(1, 6),
                                            "stream": rng.random() < 0.3, "stop": ["\n"]}, 200))
    return out


async def _drive(url: str, requests, clients: int):
    queue: asyncio.Queue = asyncio.Queue()
    for r in requests:
        queue.put_nowait(r)
    results = []

    async def client():
        async with httpx.AsyncClient(base_url=url, timeout=120) as http:
            while not queue.empty():
                path, body, want = queue.get_nowait()
                r = await http.post(path, json={"model": "tiny-llama", **body})
                text = r.text
                results.append((want, r.status_code, text))

    await asyncio.gather(*(client() for _ in range(clients)))
    return results


def test_load_no_5xx_every_valid_request_answered_memory_bounded():
    served = load_served("tiny-llama", None, "float32", None, 512, False)
    tel = Telemetry()
    engine = start_engine(served, 16, 64, tel)
    server, url = serve_in_thread(create_app(served, engine, telemetry=tel))
    try:
        asyncio.run(_drive(url, _requests(40), 8))  # warm-up: allocator and caches settle
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        results = asyncio.run(_drive(url, _requests(320, seed=1), 32))
        grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    finally:
        server.should_exit = True
        engine.close()
    assert len(results) == 320
    assert not [r for r in results if r[1] >= 500]
    wrong = [(want, got, text[:120]) for want, got, text in results if got != want]
    assert not wrong, wrong[:3]
    assert sum(1 for want, _, _ in results if want == 400) >= 40  # the malformed ones were really sent
    assert engine.running == 0 and engine.waiting == 0  # no row left behind
    assert grown_mib < 300, f"peak memory grew {grown_mib:.0f} MiB under load"
