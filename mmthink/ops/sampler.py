"""Sampling many completions of many prompts: locally through ``ops.latent.DecodeBatch``, or from any
OpenAI-compatible endpoint (``mmthink serve``, vLLM) for generation-heavy work that outgrew one process.

Both give ``sample(prompts, n, ...) -> [[text] * n] * len(prompts)`` with the same meaning: each prompt
is a user message (chat template applied where the model has one), completion ``j`` of prompt ``i``
draws from its own generator seeded ``seed + i * n + j`` (an endpoint is sent ``seed + i * n`` and
``mmthink serve`` seeds choice j with ``+ j``: the same draws), and text stops at the first stop
string, which is cut off.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Optional, Sequence

from mmthink.errors import UserError


def end_ids(tokenizer) -> tuple[list, int]:
    """(ids that end a reply: EOS and the chat template's <|im_end|> when it has one, the pad id)."""
    eos = sorted({i for i in (tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|im_end|>"))
                  if isinstance(i, int) and i != tokenizer.unk_token_id})
    return eos, tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos[0]


class LocalSampler:
    """Continuous batching over DecodeBatch: up to ``batch_rows`` rows decode together, finished rows
    are replaced by waiting ones between steps."""

    def __init__(self, model, tokenizer, batch_rows: int = 32, chat: bool = True):
        self.model, self.tokenizer, self.batch_rows = model, tokenizer, batch_rows
        self.chat = chat and getattr(tokenizer, "chat_template", None) is not None

    def encode(self, prompt: str) -> list:
        if self.chat:
            text = self.tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                                      add_generation_prompt=True)
            return self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return self.tokenizer(prompt)["input_ids"]

    def sample(self, prompts: Sequence[str], n: int, max_tokens: int, temperature: float = 1.0, top_p: float = 1.0,
               seed: int = 0, stop: Sequence[str] = ()) -> list[list[str]]:
        import torch

        from mmthink.ops.latent import DecodeBatch, RowSettings

        tok = self.tokenizer
        eos, pad = end_ids(tok)
        device = self.model.get_input_embeddings().weight.device
        encoded = [self.encode(p) for p in prompts]
        pending = [(i, j) for i in range(len(prompts)) for j in range(n)]
        pending.reverse()
        tokens: dict = {key: [] for key in pending}
        stopped: set = set()
        dec = DecodeBatch(self.model, None, eos, pad)

        def check(step_tokens):
            out = torch.zeros(len(dec.keys), dtype=torch.bool)
            if stop:
                for r, (key, t) in enumerate(zip(dec.keys, step_tokens.tolist())):
                    text = tok.decode(tokens[key] + [t], skip_special_tokens=True)
                    if any(s in text for s in stop):
                        out[r] = True
                        stopped.add(key)
            return out

        with torch.inference_mode():
            while pending or len(dec):
                room = self.batch_rows - len(dec)
                if pending and room > 0:
                    keys = [pending.pop() for _ in range(min(room, len(pending)))]
                    width = max(len(encoded[i]) for i, _ in keys)
                    ids = torch.tensor([[pad] * (width - len(encoded[i])) + encoded[i] for i, _ in keys], device=device)
                    mask = torch.tensor([[0] * (width - len(encoded[i])) + [1] * len(encoded[i]) for i, _ in keys],
                                        device=device)
                    rows = [RowSettings(max_tokens, temperature, top_p,
                                        torch.Generator(device=device).manual_seed(seed + i * n + j)) for i, j in keys]
                    dec.add(keys, ids, mask, rows)
                for row in dec.step(check if stop else None):
                    if not (row.done and row.token in eos):
                        tokens[row.key].append(row.token)
        out = [[""] * n for _ in prompts]
        for (i, j), ids in tokens.items():
            text = tok.decode(ids, skip_special_tokens=True)
            out[i][j] = _cut(text, stop)
        return out


def _cut(text: str, stop: Sequence[str]) -> str:
    cuts = [text.find(s) for s in stop if s in text]
    return text[: min(cuts)] if cuts else text


class EndpointSampler:
    """The same over HTTP: one ``/v1/chat/completions`` request (with ``n``) per prompt, ``concurrency`` at once."""

    def __init__(self, base_url: str, model: str, api_key: Optional[str] = None, concurrency: int = 8,
                 timeout_s: float = 600.0, chat: bool = True):
        self.base_url, self.model, self.api_key = base_url.rstrip("/"), model, api_key
        self.concurrency, self.timeout_s, self.chat = concurrency, timeout_s, chat

    def post(self, path: str, body: dict) -> dict:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        req = urllib.request.Request(self.base_url + path, json.dumps(body).encode(), headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            try:
                message = json.loads(e.read())["error"]["message"]
            except Exception:
                message = e.reason
            raise UserError(f"the endpoint {self.base_url} answered {e.code}: {message}") from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
            raise UserError(f"the endpoint {self.base_url} cannot be reached: {getattr(e, 'reason', e)}") from None

    def sample(self, prompts: Sequence[str], n: int, max_tokens: int, temperature: float = 1.0, top_p: float = 1.0,
               seed: int = 0, stop: Sequence[str] = ()) -> list[list[str]]:
        def one(i_prompt):
            i, prompt = i_prompt
            body = {"model": self.model, "n": n, "max_tokens": max_tokens, "temperature": temperature,
                    "top_p": top_p, "seed": seed + i * n}
            if stop:
                body["stop"] = list(stop)
            if self.chat:
                r = self.post("/chat/completions", {**body, "messages": [{"role": "user", "content": prompt}]})
                choices = sorted(r["choices"], key=lambda c: c["index"])
                return [c["message"]["content"] or "" for c in choices]
            r = self.post("/completions", {**body, "prompt": prompt})
            return [c["text"] for c in sorted(r["choices"], key=lambda c: c["index"])]

        with ThreadPoolExecutor(self.concurrency) as pool:
            return list(pool.map(one, enumerate(prompts)))
