"""Throughput of ``mmthink serve``: continuous batching against the same requests served one at a time.

One process, one model, the same requests and the same clients for both servers, measured in one
run: the batched server decodes up to --clients rows together (``--max-concurrent`` = clients), the
baseline decodes one row at a time (``--max-concurrent 1``; the others wait in its queue). Every
request streams (so the client sees its first token) and asks for exactly --new-tokens tokens
(``ignore_eos``-like: the tiny model rarely ends early; the tokens actually generated are counted).

Prints requests/s, generated tokens/s, median and 90th-percentile time to first token, and the
batched / one-at-a-time ratios.

Usage: python benchmarks/bench_serve.py [--model tiny-llama] [--clients 16] [--requests 96] [--new-tokens 32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


async def _one(http, body):
    t0 = time.perf_counter()
    first, tokens = None, 0
    async with http.stream("POST", "/v1/completions", json=body) as r:
        r.raise_for_status()
        async for line in r.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            data = json.loads(line[6:])
            if data["choices"] and data["choices"][0].get("text") and first is None:
                first = time.perf_counter() - t0
            if data.get("usage"):
                tokens = data["usage"]["completion_tokens"]
    return first if first is not None else time.perf_counter() - t0, tokens


async def _drive(url, bodies, clients):
    import httpx

    queue = list(bodies)
    ttft, tokens = [], 0

    async def client():
        nonlocal tokens
        async with httpx.AsyncClient(base_url=url, timeout=600) as http:
            while queue:
                first, n = await _one(http, queue.pop())
                ttft.append(first)
                tokens += n

    t0 = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return time.perf_counter() - t0, ttft, tokens


def measure(served, max_concurrent, bodies, clients):
    from mmthink.serve.api import create_app
    from mmthink.serve.cli import serve_in_thread, start_engine
    from mmthink.serve.telemetry import Telemetry

    tel = Telemetry()
    engine = start_engine(served, max_concurrent, len(bodies), tel)
    server, url = serve_in_thread(create_app(served, engine, telemetry=tel))
    try:
        asyncio.run(_drive(url, bodies[: max(2, clients // 4)], min(clients, 4)))  # warm-up
        wall, ttft, tokens = asyncio.run(_drive(url, bodies, clients))
    finally:
        server.should_exit = True
        engine.close()
    ttft.sort()
    return {"requests_per_s": len(bodies) / wall, "tokens_per_s": tokens / wall, "tokens": tokens,
            "ttft_p50_s": statistics.median(ttft), "ttft_p90_s": ttft[int(0.9 * (len(ttft) - 1))], "wall_s": wall}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tiny-llama")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--requests", type=int, default=96)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--device", default="auto", help="auto (a GPU when one is visible) | cpu | cuda")
    args = ap.parse_args()

    import torch

    from mmthink.serve.model import load_served

    if args.threads:
        torch.set_num_threads(args.threads)
    served = load_served(args.model, None, "float32", None, None, False, device=args.device)
    bodies = [{"model": served.name, "prompt": f"Request number {i}: " + "tell me more " * (1 + i % 5),
               "max_tokens": args.new_tokens, "temperature": 0.7, "seed": i, "stream": True,
               "stream_options": {"include_usage": True}} for i in range(args.requests)]
    rows = {"one at a time (max-concurrent 1)": measure(served, 1, bodies, args.clients),
            f"batched (max-concurrent {args.clients})": measure(served, args.clients, bodies, args.clients)}
    base, fast = rows.values()
    print(f"model {args.model} on {served.model.device}, {args.requests} requests x {args.new_tokens} tokens, "
          f"{args.clients} concurrent clients, torch threads {torch.get_num_threads()}")
    print(f"{'server':36s} {'req/s':>8s} {'tok/s':>9s} {'TTFT p50':>9s} {'TTFT p90':>9s} {'wall s':>8s}")
    for name, r in rows.items():
        print(f"{name:36s} {r['requests_per_s']:8.2f} {r['tokens_per_s']:9.1f} {r['ttft_p50_s']:9.3f} "
              f"{r['ttft_p90_s']:9.3f} {r['wall_s']:8.1f}")
    print("RESULT " + json.dumps({"batched": fast, "one_at_a_time": base,
                                  "ratio_requests_per_s": fast["requests_per_s"] / base["requests_per_s"]}))
    print(f"batched / one at a time: {fast['requests_per_s'] / base['requests_per_s']:.2f}x requests/s, "
          f"{fast['tokens_per_s'] / base['tokens_per_s']:.2f}x tokens/s, "
          f"TTFT p50 {fast['ttft_p50_s'] / base['ttft_p50_s']:.2f}x")


if __name__ == "__main__":
    main()
