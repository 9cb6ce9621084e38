"""A method's per-request loop on the server (``Served.mode``; today EvoScale): a chat request runs the
method's loop, whose samples go through the same engine as every other request, and gets one answer.

The loop is synchronous method code, so it runs on a worker thread; its ``sample`` submits one engine
request per prompt (n rows) and waits for them. A client that goes away stops the loop at its next
sample and frees its rows.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
import uuid
from typing import Optional

from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

from mmthink.serve.engine import Request, row_settings
from mmthink.serve.model import BadRequest


class EvoScaleParams(BaseModel):
    """The ``evoscale`` object of a chat request to a server in EvoScale mode (any field: the recipe's)."""

    model_config = ConfigDict(extra="forbid")

    k: Optional[int] = Field(None, ge=1, le=64)
    m: Optional[int] = Field(None, ge=1, le=64)
    t: Optional[int] = Field(None, ge=1, le=32)
    tests: Optional[str] = Field(None, max_length=100_000)  # Python asserts grading each candidate's code
    timeout_s: Optional[float] = Field(None, gt=0, le=60)


class _Gone(Exception):
    """The client disconnected: the loop stops."""


async def run_mode(app, http, body) -> dict:
    s, engine, tel = app.state.served, app.state.engine, app.state.telemetry
    if body.stream:
        raise BadRequest(f"a {s.mode.name} request answers once its loop ends: stream is not supported", "stream")
    if body.n != 1:
        raise BadRequest(f"a {s.mode.name} request returns one answer: n must be 1", "n")
    messages = [m.model_dump() for m in body.messages]
    task = messages[-1]["content"]
    if messages[-1]["role"] != "user" or not isinstance(task, str) or not task.strip():
        raise BadRequest(f"a {s.mode.name} request needs a last user message of text (the task)", "messages")
    params = body.evoscale or EvoScaleParams()
    try:
        settings = s.mode.settings(**params.model_dump())
    except ValueError as e:
        raise BadRequest(str(e), getattr(e, "param", "evoscale")) from None
    if settings.m > engine.max_concurrent:
        raise BadRequest(f"m={settings.m} is more than the server decodes at once ({engine.max_concurrent})",
                         "evoscale.m")
    max_tokens = body.max_completion_tokens or body.max_tokens or s.mode.max_new_tokens
    stop = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
    gone = threading.Event()
    usage = {"prompt_tokens": 0, "completion_tokens": 0}

    def sample(prompts, n, temperature, seed):
        out = []
        for prompt in prompts:
            ids, _ = s.chat_prompt(messages[:-1] + [{"role": "user", "content": prompt}])
            if len(ids) + max_tokens > s.max_total_tokens or len(ids) > s.max_input_tokens:
                raise BadRequest(f"a conditioning prompt has {len(ids)} tokens: with max_tokens={max_tokens} it "
                                 f"exceeds the server's limits ({s.max_input_tokens} in, {s.max_total_tokens} in "
                                 f"all); lower evoscale.k or max_tokens", "evoscale.k")
            events: queue.Queue = queue.Queue()
            request = Request(ids, row_settings(n, max_tokens, temperature, body.top_p, seed, None,
                                                device=engine.device), stop, body.skip_special_tokens,
                              emit=events.put)
            engine.submit(request)
            tel.queued(len(ids))
            texts, finished = [""] * n, 0
            while finished < n:
                try:
                    event = events.get(timeout=0.5)
                except queue.Empty:
                    if gone.is_set():
                        request.cancelled = True
                        raise _Gone from None
                    continue
                if event.kind == "delta":
                    texts[event.index] += event.text
                else:
                    finished += 1
                    if event.finish_reason == "error":
                        raise HTTPException(500, "the decoding engine failed on this request")
                    usage["completion_tokens"] += event.completion_tokens
            usage["prompt_tokens"] += len(ids) * n
            out.append(texts)
        return out

    seed = body.seed if body.seed is not None else int.from_bytes(uuid.uuid4().bytes[:4], "little")
    work = asyncio.ensure_future(asyncio.to_thread(s.mode.run, task, sample, settings, body.temperature, seed))
    try:
        while not work.done():
            await asyncio.wait([work], timeout=1.0)
            if not work.done() and await http.is_disconnected():
                raise asyncio.CancelledError
        result = work.result()
    finally:
        gone.set()
    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    return {"id": "chatcmpl-" + uuid.uuid4().hex, "object": "chat.completion", "created": int(time.time()),
            "model": s.name, "choices": [{"index": 0, "message": {"role": "assistant", "content": result["text"]},
                                          "finish_reason": "stop", "logprobs": None}],
            s.mode.name: result[s.mode.name], "usage": usage}
