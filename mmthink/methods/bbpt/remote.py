"""The black box over HTTP: serve a local model, or tune prompts against a model behind someone's API.

Protocol (JSON over HTTP; implement these two routes to put any model behind ``RemoteBlackBox``)::

    GET  {url}/info   -> {"n_classes": C, "n_prompt_tokens": L, "embed_dim": D,
                          "embedding_mean": float, "embedding_std": float, "level": "logits" | "labels"}
    POST {url}/query  <- {"prompts": null | {"shape": [P, L, D], "data": base64},
                          "texts": [str, ...], "want": "logits" | "labels"}
                      -> {"logits": {"shape": [P, N, C], "data": base64}}    (want = logits)
                       | {"labels": [[int, ...], ...]}                       (want = labels; P x N)

``data`` is base64 of the array's little-endian float32 bytes in C order. ``prompts: null`` means no
prompt tokens (zero-shot) and answers with P = 1. The soft prompts are added to the input embeddings of
L placeholder tokens after the model's leading special tokens (see ``blackbox.py``). Errors answer
``{"error": "one line"}`` with status 400 (malformed request: bad JSON, missing field, wrong shape, bad
base64), 403 (logits asked of a labels-level box), 413 (body over ``MAX_BODY`` bytes) or 500.

Serve a local model (``--level labels`` hides the logits)::

    python -m mmthink.methods.bbpt.remote --model tiny-llama --template "{text} It was {mask}" \\
        --verbalizer bad,great --n-prompt-tokens 10 --level logits --host 127.0.0.1 --port 8000

and point the tuner at it with ``RemoteBlackBox("http://127.0.0.1:8000")``. The server is plain HTTP
with no authentication: bind it to localhost or a trusted network.
"""
from __future__ import annotations

import argparse
import base64
import binascii
import json
import logging
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import asdict, fields
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import torch
from torch import Tensor

from mmthink.errors import EXIT_USER_ERROR, UserError
from mmthink.methods.bbpt.blackbox import LEVELS, BlackBox, BoxInfo, HFBlackBox, load_hf_model

log = logging.getLogger(__name__)

MAX_BODY = 64 * 2**20  # bytes; a (P, L, D) float32 prompt batch of 64 x 50 x 4096 is 52 MiB
MAX_TEXTS, MAX_TEXT_CHARS = 4096, 20_000  # a query's texts: one request must not hold the model for long


# ----- wire format: float32 arrays as {"shape", "data"} -----

def encode_array(t: Tensor) -> dict:
    data = t.detach().cpu().float().contiguous().numpy().astype("<f4", copy=False).tobytes()
    return {"shape": list(t.shape), "data": base64.b64encode(data).decode("ascii")}


def decode_array(obj, ndim: int) -> Tensor:
    """A float32 tensor from {"shape", "data"}; ValueError on any malformed part."""
    if not isinstance(obj, dict) or "shape" not in obj or "data" not in obj:
        raise ValueError("an array must be {'shape': [...], 'data': base64}")
    shape = obj["shape"]
    if not (isinstance(shape, list) and len(shape) == ndim and all(type(s) is int and s >= 0 for s in shape)):
        raise ValueError(f"shape must be a list of {ndim} non-negative ints; got {shape!r}")
    if not isinstance(obj["data"], str):
        raise ValueError("data must be a base64 string")
    try:
        raw = base64.b64decode(obj["data"], validate=True)
    except binascii.Error as e:
        raise ValueError(f"data is not valid base64: {e}") from None
    if len(raw) != 4 * int(np.prod(shape)):
        raise ValueError(f"data holds {len(raw)} bytes; shape {shape} needs {4 * int(np.prod(shape))} (float32)")
    # astype copies into a writable native-order array, which torch.from_numpy needs.
    values = np.frombuffer(raw, dtype="<f4").astype(np.float32)
    if not np.isfinite(values).all():
        raise ValueError("data holds NaN or infinite values")
    return torch.from_numpy(values).reshape(shape)


# ----- server -----

class _HTTPError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _answer(box: BlackBox, lock: threading.Lock, request) -> dict:
    """The JSON answer to one decoded /query body; _HTTPError for anything the client got wrong."""
    if not isinstance(request, dict):
        raise _HTTPError(400, "the body must be a JSON object")
    missing = [k for k in ("prompts", "texts", "want") if k not in request]
    if missing:
        raise _HTTPError(400, f"missing field(s): {', '.join(missing)}")
    want, texts = request["want"], request["texts"]
    if want not in LEVELS:
        raise _HTTPError(400, f"want must be one of {LEVELS}; got {want!r}")
    if not isinstance(texts, list) or not all(isinstance(x, str) for x in texts):
        raise _HTTPError(400, "texts must be a list of strings")
    if not texts:
        raise _HTTPError(400, "texts must not be empty")
    if len(texts) > MAX_TEXTS or max(map(len, texts)) > MAX_TEXT_CHARS:
        raise _HTTPError(413, f"at most {MAX_TEXTS} texts of {MAX_TEXT_CHARS} characters each per query")
    if want == "logits" and box.info.level != "logits":
        raise _HTTPError(403, "this black box answers with labels only (level 'labels'); ask for want=labels")
    try:
        prompts = None if request["prompts"] is None else decode_array(request["prompts"], 3)
    except ValueError as e:
        raise _HTTPError(400, f"prompts: {e}") from None
    # One model: requests from concurrent clients take turns.
    with lock:
        try:
            if want == "logits":
                return {"logits": encode_array(box.logits(prompts, texts))}
            return {"labels": box.labels(prompts, texts).tolist()}
        except (ValueError, UserError) as e:  # the box's own shape and input checks
            raise _HTTPError(400, str(e)) from None


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.rstrip("/") != "/info":
            return self._send(404, {"error": f"no route GET {self.path}; use /info or POST /query"})
        self._send(200, asdict(self.server.box.info))

    def do_POST(self) -> None:
        if self.path.rstrip("/") != "/query":
            return self._send(404, {"error": f"no route POST {self.path}; use /query"})
        try:
            size = int(self.headers.get("Content-Length", ""))
        except ValueError:
            size = -1
        if size < 0:
            return self._send(400, {"error": "a Content-Length header is required"})
        if size > MAX_BODY:
            # Drain in chunks rather than close early: a client still sending would see a broken pipe,
            # not this answer.
            while size > 0:
                chunk = self.rfile.read(min(size, 2**20))
                if not chunk:
                    break
                size -= len(chunk)
            return self._send(413, {"error": f"request body is over the {MAX_BODY}-byte limit; send fewer prompts"})
        try:
            request = json.loads(self.rfile.read(size))
            self._send(200, _answer(self.server.box, self.server.lock, request))
        except json.JSONDecodeError as e:
            self._send(400, {"error": f"body is not valid JSON: {e}"})
        except UnicodeDecodeError:
            self._send(400, {"error": "body is not UTF-8 text"})
        except RecursionError:
            self._send(400, {"error": "body is nested too deeply"})
        except _HTTPError as e:
            self._send(e.status, {"error": str(e)})
        except Exception as e:  # a bug in the box: tell the client in one line, keep the trace here
            log.exception("black-box query failed")
            self._send(500, {"error": f"{type(e).__name__}: {e}"})

    def _not_allowed(self) -> None:
        self._send(405, {"error": f"method {self.command} is not allowed; use GET /info or POST /query"})

    do_PUT = do_DELETE = do_PATCH = _not_allowed

    def _send(self, status: int, obj: dict) -> None:
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - BaseHTTPRequestHandler's name
        log.debug("%s %s", self.address_string(), format % args)


class BoxServer(ThreadingHTTPServer):
    daemon_threads = True  # a hung client must not keep the process alive

    def __init__(self, box: BlackBox, address: tuple[str, int]) -> None:
        super().__init__(address, _Handler)
        self.box, self.lock = box, threading.Lock()


def serve_blackbox(box: BlackBox, host: str = "127.0.0.1", port: int = 0) -> BoxServer:
    """Start serving ``box`` in a daemon thread; the bound port is ``server.server_address[1]``.

    Port 0 picks a free port. Stop it with ``server.shutdown()`` (and ``server.server_close()``).
    """
    server = BoxServer(box, (host, port))
    threading.Thread(target=server.serve_forever, name="blackbox-server", daemon=True).start()
    return server


# ----- client -----

class RemoteBlackBox(BlackBox):
    """A black box behind the HTTP protocol above; queries and calls are counted here, client-side.

    Connection failures are retried ``retries`` times, waiting ``backoff`` seconds and doubling; a
    timeout is not retried (the server may still be working). Any failure is a one-line ``UserError``.
    """

    def __init__(self, url: str, timeout: float = 60.0, retries: int = 2, backoff: float = 0.5) -> None:
        super().__init__()
        if not url.startswith(("http://", "https://")):
            raise UserError(f"black-box url must start with http:// or https://; got '{url}'")
        self.url, self.timeout, self.retries, self.backoff = url.rstrip("/"), timeout, retries, backoff
        self.info = self._read_info(self._request("/info"))

    def _read_info(self, obj) -> BoxInfo:
        names = [f.name for f in fields(BoxInfo)]
        if not isinstance(obj, dict) or any(n not in obj for n in names):
            raise UserError(f"black box at {self.url}/info must answer with the fields {names}; got {obj!r:.200}")
        try:
            info = BoxInfo(int(obj["n_classes"]), int(obj["n_prompt_tokens"]), int(obj["embed_dim"]),
                           float(obj["embedding_mean"]), float(obj["embedding_std"]), str(obj["level"]))
        except (TypeError, ValueError) as e:
            raise UserError(f"black box at {self.url}/info answered a malformed field: {e}") from None
        if info.level not in LEVELS:
            raise UserError(f"black box at {self.url}/info names level '{info.level}'; expected one of {LEVELS}")
        return info

    def _logits(self, prompts: Tensor | None, texts: list[str]) -> Tensor:
        obj = self._query(prompts, texts, "logits")
        try:
            out = decode_array(obj["logits"], 3)
        except (KeyError, TypeError, ValueError) as e:
            raise UserError(f"black box at {self.url} answered malformed logits: {e}") from None
        return self._expect(out, (self._n_prompts(prompts), len(texts), self.info.n_classes), "logits")

    def _labels(self, prompts: Tensor | None, texts: list[str]) -> Tensor:
        obj = self._query(prompts, texts, "labels")
        try:
            out = torch.tensor(obj["labels"], dtype=torch.long)
        except (KeyError, TypeError, ValueError) as e:
            raise UserError(f"black box at {self.url} answered malformed labels: {e}") from None
        return self._expect(out, (self._n_prompts(prompts), len(texts)), "labels")

    def _n_prompts(self, prompts: Tensor | None) -> int:
        return 1 if prompts is None else len(prompts)

    def _expect(self, out: Tensor, shape: tuple, what: str) -> Tensor:
        if tuple(out.shape) != shape:
            raise UserError(f"black box at {self.url} answered {what} of shape {tuple(out.shape)}; expected {shape}")
        return out

    def _query(self, prompts: Tensor | None, texts: list[str], want: str) -> dict:
        body = {"prompts": None if prompts is None else encode_array(prompts), "texts": texts, "want": want}
        return self._request("/query", body)

    def _request(self, path: str, body: dict | None = None):
        """The decoded JSON answer of GET (no body) or POST ``path``; UserError on any failure."""
        url = self.url + path
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
        for attempt in range(self.retries + 1):
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    return self._decode(url, resp.read())
            except urllib.error.HTTPError as e:  # the server answered: retrying would get the same answer
                raise UserError(f"black box at {url} refused the request (HTTP {e.code}): {self._reason(e)}") from None
            except (urllib.error.URLError, ConnectionError, TimeoutError) as e:
                reason = getattr(e, "reason", e)
                if isinstance(reason, TimeoutError) or isinstance(e, TimeoutError):
                    raise UserError(f"black box at {url} did not answer within {self.timeout} s") from None
                if attempt == self.retries:
                    raise UserError(f"black box at {url} is unreachable after {attempt + 1} tries: {reason}") from None
                time.sleep(self.backoff * 2**attempt)

    def _decode(self, url: str, raw: bytes):
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            raise UserError(f"black box at {url} answered something that is not JSON: {raw[:100]!r}") from None

    def _reason(self, e: urllib.error.HTTPError) -> str:
        raw = e.read()
        try:
            return str(json.loads(raw)["error"])
        except (json.JSONDecodeError, KeyError, TypeError):
            return raw.decode(errors="replace")[:200] or str(e.reason)


# ----- command line: serve a local transformers model -----

def load_box(model: str, template: str, verbalizer: list[str], n_prompt_tokens: int, level: str,
             device: str = "cpu") -> HFBlackBox:
    """An HFBlackBox for a tiny preset, the shipped models, a hub id or a local folder."""
    m, tok = load_hf_model(model, device=device)
    return HFBlackBox(m, tok, template, verbalizer, n_prompt_tokens, level=level)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Serve a local model as a prompt-tuning black box over HTTP.")
    p.add_argument("--model", required=True, help="tiny preset, shipped model, hub id or local folder")
    p.add_argument("--template", default="{text} It was {mask}")
    p.add_argument("--verbalizer", default="bad,great", help="comma-separated class words")
    p.add_argument("--n-prompt-tokens", type=int, default=10)
    p.add_argument("--level", choices=LEVELS, default="logits")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    a = p.parse_args(argv)
    try:
        if a.n_prompt_tokens < 1 or not 0 <= a.port < 65536:
            raise UserError(f"--n-prompt-tokens must be >= 1 and --port in [0, 65535]; got {a.n_prompt_tokens}, {a.port}")
        box = load_box(a.model, a.template, a.verbalizer.split(","), a.n_prompt_tokens, a.level, a.device)
        try:
            server = serve_blackbox(box, a.host, a.port)
        except OSError as e:  # the port is taken or the host is not ours
            raise UserError(f"cannot listen on {a.host}:{a.port}: {e.strerror or e}") from None
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
    host, port = server.server_address[:2]
    print(f"serving {a.model} ({a.level}) at http://{host}:{port}; Ctrl-C stops", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.shutdown()


if __name__ == "__main__":
    main()
