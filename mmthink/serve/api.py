"""The HTTP face of ``mmthink serve``: OpenAI's routes and JSON shapes, on FastAPI.

Routes: /v1/models, /v1/chat/completions (in a method's mode, e.g. EvoScale, its loop: modes.py),
/v1/completions, /tokenize, /health, /info, /metrics.
Errors come in OpenAI's shape ``{"error": {"message", "type", "param", "code"}}``: 400 for a malformed
or out-of-range field, 401 for a missing or wrong key, 404 for an unknown model or route, 413 for a body
over the limit, 429 when the waiting queue is full, 503 while the model loads.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any, Literal, Optional, Union

from fastapi import FastAPI, Request as HTTPRequest
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

from mmthink.serve.engine import Event, Overloaded, Request, row_settings
from mmthink.serve.model import BadRequest, Served
from mmthink.serve.modes import EvoScaleParams, run_mode
from mmthink.serve.telemetry import Telemetry

MAX_N = 16
MAX_TOP_LOGPROBS = 20


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")  # fields of other servers are accepted and ignored, as vLLM does

    model: str
    max_tokens: Optional[int] = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    n: int = Field(1, ge=1, le=MAX_N)
    seed: Optional[int] = Field(None, ge=0, le=2**63 - 1)
    stop: Optional[Union[str, list[str]]] = None
    stream: bool = False
    stream_options: Optional[dict] = None
    user: Optional[str] = None
    skip_special_tokens: bool = True  # false shows special tokens (e.g. Satori's meta-actions) in the text
    # Mirage checkpoints: what fills the latent slots, and the latent steps before <|latent_end|> is forced.
    latent_mode: Optional[Literal["model", "zeros", "noise"]] = None
    latent_max_len: Optional[int] = Field(None, ge=0, le=64)
    # Multiple choice (a server started with --calibrator): score these answers instead of generating;
    # each choice of the response is one option with its calibrated "confidence".
    options: Optional[list[str]] = Field(None, min_length=2, max_length=26)


class ImageURL(BaseModel):
    url: str


class ContentPart(BaseModel):
    type: Literal["text", "image_url"]
    text: Optional[str] = None
    image_url: Optional[ImageURL] = None


class Message(BaseModel):
    role: Literal["system", "user", "assistant", "developer"]
    content: Optional[Union[str, list[ContentPart]]] = None


class ChatBody(_Body):
    messages: list[Message] = Field(min_length=1)
    logprobs: bool = False
    top_logprobs: Optional[int] = Field(None, ge=0, le=MAX_TOP_LOGPROBS)
    max_completion_tokens: Optional[int] = Field(None, ge=1)
    # A server in EvoScale mode (an EvoScale checkpoint or --recipe): K, M, T and tests for the loop.
    evoscale: Optional[EvoScaleParams] = None


class CompletionBody(_Body):
    prompt: Union[str, list[int], list[str], list[list[int]]]  # several prompts: choices i * n + j
    logprobs: Optional[int] = Field(None, ge=0, le=MAX_TOP_LOGPROBS)
    echo: bool = False
    max_tokens: Optional[int] = Field(16, ge=1)  # OpenAI's default for completions


class TokenizeBody(BaseModel):
    model: Optional[str] = None
    prompt: Optional[str] = None
    messages: Optional[list[Message]] = None


def error(status: int, message: str, kind: str = "invalid_request_error", param: Optional[str] = None,
          code: Any = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": code}}, status_code=status)


_KINDS = {401: "authentication_error", 404: "not_found_error", 413: "invalid_request_error", 429: "rate_limit_error",
          503: "service_unavailable"}


def create_app(served: Optional[Served] = None, engine=None, api_key: Optional[str] = None,
               max_body_bytes: int = 16 * 2**20, telemetry: Optional[Telemetry] = None) -> FastAPI:
    """The app; ``served`` / ``engine`` may be set later (``app.state``) while the model loads (503 meanwhile)."""
    app = FastAPI(title="mmthink serve", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.served, app.state.engine = served, engine
    app.state.telemetry = telemetry or Telemetry()
    tel = app.state.telemetry

    @app.middleware("http")
    async def guard(request: HTTPRequest, call_next):
        rid = request.headers.get("x-request-id") or uuid.uuid4().hex
        started = time.monotonic()
        size = request.headers.get("content-length")
        if size is not None and (not size.isdigit() or int(size) > max_body_bytes):
            response = error(413, f"the request body is over {max_body_bytes} bytes")
        elif api_key and request.url.path.startswith(("/v1/", "/tokenize", "/info")) and \
                request.headers.get("authorization", "") != f"Bearer {api_key}":
            response = error(401, "missing or wrong API key (Authorization: Bearer KEY)", _KINDS[401])
        elif app.state.engine is None and request.url.path not in ("/health", "/metrics"):
            response = error(503, "the model is still loading", _KINDS[503])
        else:
            response = await call_next(request)
        response.headers["x-request-id"] = rid
        tel.request(request.url.path, response.status_code, time.monotonic() - started)
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid(_, exc: RequestValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return error(400, f"{where or 'body'}: {first.get('msg', 'invalid value')}", param=where or None)

    @app.exception_handler(HTTPException)
    async def http_error(_, exc: HTTPException):
        return error(exc.status_code, str(exc.detail), _KINDS.get(exc.status_code, "invalid_request_error"))

    @app.exception_handler(BadRequest)
    async def bad_request(_, exc: BadRequest):
        return error(400, str(exc), param=exc.param)

    @app.exception_handler(Overloaded)
    async def overloaded(_, exc: Overloaded):
        return error(429, str(exc), _KINDS[429])

    @app.get("/health")
    async def health():
        if app.state.engine is None:
            return error(503, "the model is still loading", _KINDS[503])
        if app.state.engine.error is not None:
            return error(503, f"the engine failed: {app.state.engine.error}", _KINDS[503])
        return {"status": "ok"}

    @app.get("/metrics")
    async def metrics():
        return PlainTextResponse(tel.render(), media_type="text/plain; version=0.0.4")

    @app.get("/info")
    async def info():
        s = app.state.served
        return {"model_id": s.name, "method": s.method or None, "latent_decoding": s.latent is not None,
                "calibrated_choices": s.scorer is not None, "mode": s.mode.name if s.mode is not None else None,
                "image_input": s.is_vision, "max_input_tokens": s.max_input_tokens,
                "max_total_tokens": s.max_total_tokens, "max_concurrent": app.state.engine.max_concurrent,
                "max_queue": app.state.engine.max_queue, "max_body_bytes": max_body_bytes}

    @app.get("/v1/models")
    async def models():
        s = app.state.served
        return {"object": "list", "data": [{"id": s.name, "object": "model", "created": int(time.time()),
                                            "owned_by": "mmthink", "max_model_len": s.max_total_tokens}]}

    @app.post("/tokenize")
    async def tokenize(body: TokenizeBody):
        s = app.state.served
        _check_model(s, body.model)
        if (body.prompt is None) == (body.messages is None):
            raise BadRequest("give exactly one of prompt and messages", "prompt")
        ids = s.encode(body.prompt) if body.prompt is not None else \
            s.chat_prompt([m.model_dump() for m in body.messages])[0]
        return {"tokens": ids, "count": len(ids), "max_model_len": s.max_total_tokens}

    @app.post("/v1/chat/completions")
    async def chat(body: ChatBody, http: HTTPRequest):
        s = app.state.served
        _check_model(s, body.model)
        if body.options is not None:
            user = [m for m in body.messages if m.role == "user"]
            if not user or not isinstance(user[-1].content, (str, type(None))) and \
                    any(p.type != "text" for p in user[-1].content):
                raise BadRequest("a multiple-choice request needs a last user message of text", "messages")
            content = user[-1].content
            question = content if isinstance(content, str) else "".join(p.text or "" for p in content)
            return await _choose(app, body, question or "", chat=True)
        if s.mode is not None:
            return await run_mode(app, http, body)
        if body.evoscale is not None:
            raise BadRequest(f"model '{s.name}' is not served in EvoScale mode (start the server with an EvoScale "
                             f"checkpoint or --recipe)", "evoscale")
        ids, vision = s.chat_prompt([m.model_dump() for m in body.messages])
        top = body.top_logprobs if body.logprobs else None
        if body.top_logprobs is not None and not body.logprobs:
            raise BadRequest("top_logprobs needs logprobs: true", "top_logprobs")
        limit = body.max_completion_tokens or body.max_tokens
        return await _generate(app, http, body, ids, vision, limit, (top or 0) if body.logprobs else None, chat=True)

    @app.post("/v1/completions")
    async def completions(body: CompletionBody, http: HTTPRequest):
        s = app.state.served
        _check_model(s, body.model)
        if body.options is not None:
            if not isinstance(body.prompt, str):
                raise BadRequest("a multiple-choice request takes the question as a string prompt", "prompt")
            return await _choose(app, body, body.prompt, chat=False)
        prompts = body.prompt if isinstance(body.prompt, list) and body.prompt and \
            isinstance(body.prompt[0], (str, list)) else [body.prompt]
        ids = [_prompt_ids(s, p) for p in prompts]
        if len(ids) == 1:
            return await _generate(app, http, body, ids[0], None, body.max_tokens, body.logprobs, chat=False)
        if body.stream:
            raise BadRequest("stream takes one prompt", "prompt")
        parts = await asyncio.gather(*(_generate(app, http, body, i, None, body.max_tokens, body.logprobs, chat=False)
                                       for i in ids))
        merged = dict(parts[0], choices=[], usage={"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0})
        for k, part in enumerate(parts):  # OpenAI's order: prompt k's choices at k * n + j
            merged["choices"] += [dict(c, index=k * body.n + c["index"]) for c in part["choices"]]
            for key in merged["usage"]:
                merged["usage"][key] += part["usage"][key]
        return merged

    return app


def _prompt_ids(s: Served, prompt) -> list:
    if isinstance(prompt, str):
        return s.encode(prompt)
    vocab = len(s.tokenizer)
    if not prompt or any(not 0 <= t < vocab for t in prompt):
        raise BadRequest(f"prompt token ids must be a non-empty list within [0, {vocab})", "prompt")
    return list(prompt)


def _check_model(served: Served, name: Optional[str]) -> None:
    if name is not None and name != served.name:
        raise HTTPException(404, f"the model '{name}' does not exist; this server serves '{served.name}'")


async def _generate(app, http: HTTPRequest, body: _Body, ids: list, vision, max_tokens: Optional[int],
                    logprobs: Optional[int], chat: bool):
    s, engine, tel = app.state.served, app.state.engine, app.state.telemetry
    if not ids:
        raise BadRequest("the prompt is empty", "prompt")
    if len(ids) > s.max_input_tokens:
        raise BadRequest(f"the prompt has {len(ids)} tokens, more than the server accepts ({s.max_input_tokens})",
                         "messages" if chat else "prompt")
    room = s.max_total_tokens - len(ids)
    max_tokens = max_tokens or min(256, room)
    if max_tokens > room:
        raise BadRequest(f"max_tokens={max_tokens} + the prompt's {len(ids)} tokens exceed the server's "
                         f"{s.max_total_tokens}-token limit", "max_tokens")
    if body.n > engine.max_concurrent:
        raise BadRequest(f"n={body.n} is more than the server decodes at once ({engine.max_concurrent})", "n")
    stop = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
    if len(stop) > 4 or any(not x for x in stop):
        raise BadRequest("stop takes at most 4 non-empty strings", "stop")
    if (body.latent_mode or body.latent_max_len is not None) and s.latent is None:
        raise BadRequest(f"model '{s.name}' does not decode with latent tokens", "latent_mode")
    echo = getattr(body, "echo", False)
    if echo and body.stream:
        raise BadRequest("echo is not supported with stream", "echo")
    latent = s.latent_defaults
    settings = row_settings(body.n, max_tokens, body.temperature, body.top_p, body.seed, logprobs,
                            body.latent_max_len if body.latent_max_len is not None else (latent.max_len if latent else 8),
                            (latent.k if latent.min_len is None else latent.min_len) if latent else 0,
                            device=engine.device)
    for row in settings:
        row.latent_mode = body.latent_mode
        if latent is not None:
            row.min_latent = min(row.min_latent, row.max_latent)
    loop = asyncio.get_running_loop()
    events: asyncio.Queue = asyncio.Queue()
    request = Request(ids, settings, stop, body.skip_special_tokens, vision,
                      emit=lambda e: loop.call_soon_threadsafe(events.put_nowait, e))
    engine.submit(request)
    tel.queued(len(ids))
    rid = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex
    created = int(time.time())
    if body.stream:
        include_usage = bool((body.stream_options or {}).get("include_usage"))
        return StreamingResponse(_stream(request, events, body, rid, created, chat, include_usage, s, tel, http),
                                 media_type="text/event-stream")
    try:
        choices = await _collect(request, events, http)
    finally:
        request.cancelled = True  # a no-op when finished; frees the rows of a client gone away
    return _response(request, choices, body, rid, created, chat, s, tel, echo, logprobs)


async def _collect(request: Request, events: asyncio.Queue, http: HTTPRequest) -> dict:
    """{choice index: {"text", "tokens", "finish", "latent_steps", "completion_tokens"}} once all finished."""
    out = {i: {"text": "", "tokens": []} for i in range(request.n)}
    finished = 0
    while finished < request.n:
        try:
            event: Event = await asyncio.wait_for(events.get(), timeout=1.0)
        except asyncio.TimeoutError:
            if await http.is_disconnected():
                raise asyncio.CancelledError from None
            continue
        c = out[event.index]
        if event.kind == "delta":
            c["text"] += event.text
            c["tokens"] += event.tokens
        else:
            finished += 1
            c.update(finish=event.finish_reason, latent_steps=event.latent_steps,
                     completion_tokens=event.completion_tokens)
    if any(c["finish"] == "error" for c in out.values()):
        raise HTTPException(500, "the decoding engine failed on this request")
    return out


async def _choose(app, body: _Body, question: str, chat: bool) -> dict:
    """Score the request's options (Thermometer): one choice per option, in the request's order."""
    s = app.state.served
    if s.scorer is None:
        raise BadRequest("options need a server started with --calibrator (a Thermometer calibrator)", "options")
    if any(not o.strip() for o in body.options):
        raise BadRequest("options must be non-empty strings", "options")
    try:
        scored = await asyncio.to_thread(s.scorer.score, question, list(body.options))
    except ValueError as e:
        raise BadRequest(str(e), "options") from None
    choices = []
    for i, option in enumerate(body.options):
        choice = {"index": i, "finish_reason": "stop", "logprobs": None, "confidence": scored["confidence"][i],
                  "probability": scored["probability"][i], "score": scored["scores"][i]}
        choice.update({"message": {"role": "assistant", "content": option}} if chat else {"text": option})
        choices.append(choice)
    best = max(range(len(choices)), key=lambda i: scored["confidence"][i])
    prompt_tokens = len(s.encode(question))
    return {"id": ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex,
            "object": "chat.completion" if chat else "text_completion", "created": int(time.time()), "model": s.name,
            "choices": choices, "calibration": {"temperature": scored["temperature"], "answer": best,
                                                "scoring": scored["scoring"]},
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": 0, "total_tokens": prompt_tokens}}


def _usage(request: Request, completion: int) -> dict:
    prompt = len(request.prompt_ids)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _token_text(tokenizer, tid: int) -> str:
    return tokenizer.decode([tid])


def _chat_logprobs(tokenizer, tokens: list) -> dict:
    def entry(tid, lp):
        text = _token_text(tokenizer, tid)
        return {"token": text, "logprob": lp, "bytes": list(text.encode())}

    return {"content": [dict(entry(t.id, t.logprob), top_logprobs=[entry(i, lp) for i, lp in t.top]) for t in tokens]}


def _completion_logprobs(tokenizer, tokens: list, start: int = 0, prompt: Optional[list] = None) -> dict:
    """OpenAI's legacy shape; ``prompt`` = [(token id, logprob or None, top)] prepended (echo)."""
    entries = [(t.id, t.logprob, t.top) for t in tokens]
    entries = (prompt or []) + entries
    texts = [_token_text(tokenizer, tid) for tid, _, _ in entries]
    offsets, at = [], start
    for t in texts:
        offsets.append(at)
        at += len(t)
    return {"tokens": texts, "token_logprobs": [lp for _, lp, _ in entries],
            "top_logprobs": [({_token_text(tokenizer, i): lp for i, lp in top} if lp is not None else None)
                             for _, lp, top in entries],
            "text_offset": offsets}


def prompt_logprobs(served: Served, ids: list, top: int) -> list:
    """[(token id, logprob | None, top)] of each prompt token under the model (the first has none)."""
    import torch

    model = served.model
    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([ids], device=model.device)).logits[0, :-1].float()
    logp = torch.log_softmax(logits, dim=-1)
    chosen = logp.gather(-1, torch.tensor(ids[1:], device=logp.device)[:, None]).squeeze(-1).tolist()
    tops = logp.topk(top, dim=-1) if top else None
    out = [(ids[0], None, [])]
    for j, tid in enumerate(ids[1:]):
        alt = list(zip(tops.indices[j].tolist(), tops.values[j].tolist())) if tops is not None else []
        out.append((tid, chosen[j], alt))
    return out


def _response(request, choices, body, rid, created, chat, s: Served, tel, echo, logprobs):
    completion = sum(c["completion_tokens"] for c in choices.values())
    tel.finished(request, completion)
    prompt_text = s.tokenizer.decode(request.prompt_ids, skip_special_tokens=request.skip_special_tokens) if echo else ""
    prompt_lp = prompt_logprobs(s, request.prompt_ids, logprobs) if echo and logprobs is not None else None
    out = []
    for i, c in sorted(choices.items()):
        choice = {"index": i, "finish_reason": c["finish"]}
        if chat:
            choice["message"] = {"role": "assistant", "content": c["text"]}
            choice["logprobs"] = _chat_logprobs(s.tokenizer, c["tokens"]) if logprobs is not None else None
        else:
            choice["text"] = prompt_text + c["text"]
            choice["logprobs"] = (_completion_logprobs(s.tokenizer, c["tokens"], len(prompt_text) if not prompt_lp else 0,
                                                       prompt_lp) if logprobs is not None else None)
        if s.latent is not None:
            choice["latent_steps"] = c["latent_steps"]
        out.append(choice)
    return {"id": rid, "object": "chat.completion" if chat else "text_completion", "created": created,
            "model": s.name, "choices": out, "usage": _usage(request, completion)}


async def _stream(request, events, body, rid, created, chat, include_usage, s: Served, tel, http):
    """Server-sent events: one chunk per delta, a chunk with each choice's finish reason, usage, [DONE]."""
    kind = "chat.completion.chunk" if chat else "text_completion"
    logprobs = request.settings[0].logprobs

    def chunk(choices, usage=None):
        data = {"id": rid, "object": kind, "created": created, "model": s.name, "choices": choices}
        if include_usage:
            data["usage"] = usage
        return f"data: {json.dumps(data)}\n\n"

    finished, completion, started = 0, 0, set()
    try:
        while finished < request.n:
            event: Event = await events.get()
            if event.kind == "delta":
                if chat:
                    delta = {"content": event.text}
                    if event.index not in started:
                        delta["role"] = "assistant"
                        started.add(event.index)
                    choice = {"index": event.index, "delta": delta, "finish_reason": None,
                              "logprobs": _chat_logprobs(s.tokenizer, event.tokens) if logprobs is not None else None}
                else:
                    choice = {"index": event.index, "text": event.text, "finish_reason": None,
                              "logprobs": _completion_logprobs(s.tokenizer, event.tokens) if logprobs is not None else None}
                yield chunk([choice])
            else:
                finished += 1
                completion += event.completion_tokens
                last = {"index": event.index, "finish_reason": event.finish_reason, "logprobs": None}
                last.update({"delta": {}} if chat else {"text": ""})
                if s.latent is not None:
                    last["latent_steps"] = event.latent_steps
                yield chunk([last])
        tel.finished(request, completion)
        if include_usage:
            yield chunk([], _usage(request, completion))
        yield "data: [DONE]\n\n"
    finally:
        request.cancelled = True  # the client went away (or all is sent): free its rows
