"""The serving engine: one thread decodes every running request together (continuous batching).

Requests wait in a bounded queue; between decode steps the engine admits waiting ones into the
running ``ops.latent.DecodeBatch`` while its rows stay under ``max_concurrent``, and each step's
tokens go back to the request as events (text deltas with their token log-probs, then a finish).
Stop strings are matched on the decoded text, which is held back while it could still be the start
of one. A request whose client went away is dropped from the batch at the next step.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from mmthink.ops.latent import DecodeBatch, LatentTokens, RowSettings
from mmthink.ops.sampler import end_ids


class Overloaded(Exception):
    """The waiting queue is full (the server answers 429)."""


@dataclass
class Token:
    id: int
    logprob: Optional[float] = None
    top: list = field(default_factory=list)  # [(token id, logprob)]


@dataclass
class Event:
    """What the engine tells a request: ``kind`` is "delta" (new text of choice ``index``) or "finish"."""

    kind: str
    index: int
    text: str = ""
    tokens: list = field(default_factory=list)  # Token of this delta's text tokens
    finish_reason: Optional[str] = None
    completion_tokens: int = 0
    latent_steps: int = 0


@dataclass
class Request:
    """One API request: ``n`` rows decoding the same prompt."""

    prompt_ids: list
    settings: list  # RowSettings, one per choice
    stop: list = field(default_factory=list)
    skip_special_tokens: bool = True
    vision: Optional[dict] = None  # pixel_values, image_grid_thw for an image-text model
    emit: Callable[[Event], None] = lambda event: None  # called from the engine thread
    cancelled: bool = False
    arrived: float = field(default_factory=time.monotonic)
    first_token_at: Optional[float] = None

    @property
    def n(self) -> int:
        return len(self.settings)


class _Row:
    """A choice being decoded: its tokens so far and how much of its text went out."""

    def __init__(self, request: Request, index: int):
        self.request, self.index = request, index
        self.text_ids: list[int] = []
        self.pending: list[Token] = []  # text tokens whose text was not sent yet
        self.sent = 0  # characters of the decoded text already sent
        self.latent_steps = 0
        self.generated = 0  # text tokens generated, the end-of-sequence token included (usage counts it)
        self.stopped = False  # a stop string matched
        self.ended = False  # the model ended the sequence


class Engine:
    """Owns the model; ``submit`` from any thread, decoding happens on the engine's own thread."""

    def __init__(self, model, tokenizer, latent: Optional[LatentTokens] = None, max_concurrent: int = 16,
                 max_queue: int = 64, latent_mode: str = "model", latent_stop: str = "argmax",
                 on_step: Optional[Callable[[int, int], None]] = None):
        self.model, self.tokenizer, self.latent = model, tokenizer, latent
        self.max_concurrent, self.max_queue = max_concurrent, max_queue
        self.latent_mode, self.latent_stop = latent_mode, latent_stop
        self.on_step = on_step or (lambda running, waiting: None)  # metrics: rows decoding, requests waiting
        self.eos, self.pad = end_ids(tokenizer)
        self._waiting: "queue.Queue[Request]" = queue.Queue()
        self._wake = threading.Event()
        self._stop = False
        self._rows: dict[Any, _Row] = {}
        self._batch: Optional[DecodeBatch] = None
        self.device = model.get_input_embeddings().weight.device
        self._thread = threading.Thread(target=self._loop, name="mmthink-engine", daemon=True)
        self.error: Optional[BaseException] = None

    def start(self) -> "Engine":
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop = True
        self._wake.set()
        self._thread.join(timeout=10)

    @property
    def waiting(self) -> int:
        return self._waiting.qsize()

    @property
    def running(self) -> int:
        return len(self._rows)

    def submit(self, request: Request) -> None:
        if request.n > self.max_concurrent:
            raise ValueError(f"n={request.n} is more than the server decodes at once ({self.max_concurrent})")
        # Free rows admit at the next step; beyond them at most max_queue requests wait.
        if self._waiting.qsize() >= self.max_queue + max(0, self.max_concurrent - self.running):
            raise Overloaded(f"the server is at capacity ({self.max_queue} requests waiting); retry later")
        self._waiting.put(request)
        self._wake.set()

    # -- the engine thread -------------------------------------------------------------------------

    def _loop(self) -> None:
        import torch

        with torch.inference_mode():
            while not self._stop:
                try:
                    self._admit()
                    self._drop_cancelled()
                    if not self._rows:
                        self.on_step(0, self.waiting)
                        self._wake.wait(timeout=0.5)
                        self._wake.clear()
                        continue
                    self._step()
                    self.on_step(self.running, self.waiting)
                except Exception as e:  # a bug, not a client's mistake: fail the running requests loudly
                    self.error = e
                    for row in list(self._rows.values()):
                        row.request.emit(Event("finish", row.index, finish_reason="error"))
                    self._rows.clear()
                    self._batch = None

    def _admit(self) -> None:
        """Move waiting requests into the batch while there is room; text prompts prefill together."""
        import torch

        texts: list[Request] = []
        room = self.max_concurrent - len(self._rows)
        while not self._waiting.empty():
            head = self._waiting.queue[0]
            if head.n > room:
                break
            request = self._waiting.get()
            if request.cancelled:
                continue
            room -= request.n
            if request.vision is None:
                texts.append(request)
            else:
                self._prefill([request], torch)
        if texts:
            self._prefill(texts, torch)

    def _prefill(self, requests: list, torch) -> None:
        if self._batch is None:
            self._batch = DecodeBatch(self.model, self.latent, self.eos, self.pad, self.latent_mode, self.latent_stop)
        width = max(len(r.prompt_ids) for r in requests)
        ids, mask, keys, settings = [], [], [], []
        for r in requests:
            pad = width - len(r.prompt_ids)
            for i, s in enumerate(r.settings):
                ids.append([self.pad] * pad + list(r.prompt_ids))
                mask.append([0] * pad + [1] * len(r.prompt_ids))
                key = (id(r), i)
                keys.append(key)
                settings.append(s)
                self._rows[key] = _Row(r, i)
        device = self._batch.device
        input_ids = torch.tensor(ids, device=device)
        vision = {}
        if requests[0].vision is not None:  # one image request at a time: its n rows share the image
            v = requests[0].vision
            n = requests[0].n
            vision = {"pixel_values": torch.cat([v["pixel_values"]] * n).to(device),
                      "image_grid_thw": torch.cat([v["image_grid_thw"]] * n).to(device),
                      "mm_token_type_ids": (input_ids == self.model.config.image_token_id).int()}
        self._batch.add(keys, input_ids, torch.tensor(mask, device=device), settings, **vision)

    def _drop_cancelled(self) -> None:
        gone = [k for k, row in self._rows.items() if row.request.cancelled]
        if gone:
            self._batch.drop(gone)
            for k in gone:
                del self._rows[k]

    def _step(self) -> None:
        import torch

        batch = self._batch
        keys = list(batch.keys)

        def stops(tokens):  # stop strings are matched on each row's decoded text, after this token
            out = torch.zeros(len(keys), dtype=torch.bool)
            for i, (key, tok) in enumerate(zip(keys, tokens.tolist())):
                row = self._rows[key]
                if row.request.stop and tok not in (batch.latent.pad, batch.latent.end):
                    text = self._decode(row, row.text_ids + [tok])
                    row.stopped = any(s in text[max(0, row.sent - len(s)):] for s in row.request.stop)
                    out[i] = row.stopped
            return out

        for step in batch.step(stops):
            row = self._rows[step.key]
            request = row.request
            if request.first_token_at is None:
                request.first_token_at = time.monotonic()
            if step.text:
                row.generated += 1
                if step.done and step.token in self.eos and not row.stopped:
                    row.ended = True  # its text is not part of the answer
                else:
                    row.text_ids.append(step.token)
                    row.pending.append(Token(step.token, step.logprob, step.top))
            elif step.token == batch.latent.pad:
                row.latent_steps += 1
            self._send(row, step.done)
            if step.done:
                del self._rows[step.key]
        if not batch.keys:
            self._batch = None

    def _decode(self, row: _Row, ids: list) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=row.request.skip_special_tokens)

    def _send(self, row: _Row, done: bool) -> None:
        request = row.request
        text = self._decode(row, row.text_ids)
        finish = None
        if done:
            finish = "stop" if row.stopped or row.ended else "length"
            cut = min((text.find(s) for s in request.stop if s in text), default=-1)
            if cut >= 0:
                text = text[:cut]
            upto = len(text)
        else:
            # Hold back what could still become a stop string, and a half-decoded character.
            hold = max((len(s) - 1 for s in request.stop), default=0)
            upto = len(text) - hold
            while upto > row.sent and text[upto - 1] == "\ufffd":
                upto -= 1
        if upto > row.sent or (done and row.pending):
            tokens, row.pending = row.pending, []
            request.emit(Event("delta", row.index, text[row.sent:max(upto, row.sent)], tokens))
            row.sent = max(upto, row.sent)
        if done:
            request.emit(Event("finish", row.index, finish_reason=finish, completion_tokens=row.generated,
                               latent_steps=row.latent_steps))


def row_settings(n: int, max_tokens: int, temperature: float, top_p: float, seed: Optional[int],
                 logprobs: Optional[int], max_latent: int = 8, min_latent: int = 0, device="cpu") -> list:
    """The n rows of a request: row i samples from its own generator (seed + i, or fresh entropy), so its
    tokens do not depend on which other requests share the batch."""
    import torch

    rows = []
    for i in range(n):
        g = torch.Generator(device=device).manual_seed(seed + i if seed is not None else int.from_bytes(os.urandom(8), "little"))
        rows.append(RowSettings(max_tokens, temperature, top_p, g, max_latent, min_latent, logprobs))
    return rows
