"""One chat turn with images to a vision-language model: locally (a transformers VLM of the Qwen2.5-VL
class) or through any OpenAI-compatible endpoint (``mmthink serve``, vLLM) with images as base64 data
URLs. Both take the same content, a list of ``("text", str)`` / ``("image", PIL.Image)`` parts, and
return the reply text; both can be wrapped in a ``ReplyCache`` so a study re-runs exactly and cheaply.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
from pathlib import Path
from typing import Optional

from mmthink.errors import UserError


def png_bytes(image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def data_url(image) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(image)).decode()


def fit_side(image, side: int):
    """The image with its longest side at most ``side`` pixels (aspect kept)."""
    w, h = image.size
    if max(w, h) <= side:
        return image
    s = side / max(w, h)
    return image.resize((max(1, round(w * s)), max(1, round(h * s))))


def expand_image_pads(text: str, grid_thw, merge_size: int) -> str:
    """Qwen's chat template writes one <|image_pad|> per image; the model wants one per merged vision token."""
    counts = (grid_thw.prod(-1) // merge_size**2).tolist()
    pieces = text.split("<|image_pad|>")
    if len(pieces) != len(counts) + 1:
        raise UserError(f"the chat template placed {len(pieces) - 1} images, the message has {len(counts)}")
    return pieces[0] + "".join("<|image_pad|>" * n + rest for n, rest in zip(counts, pieces[1:]))


class LocalVLM:
    """Greedy (or sampled) decoding of one chat turn with a loaded transformers VLM."""

    def __init__(self, model, tokenizer, processor, name: str, max_new_tokens: int = 160, temperature: float = 0.0):
        if processor is None:
            raise UserError(f"{name} is not a vision-language model (no image processor): use a Qwen2.5-VL class model")
        self.model, self.tokenizer, self.processor, self.name = model, tokenizer, processor, name
        self.max_new_tokens, self.temperature = max_new_tokens, temperature

    def inputs(self, parts: list):
        """Token ids and vision inputs of the user turn ``parts`` with the assistant header."""
        content, images = [], []
        for kind, value in parts:
            if kind == "text":
                content.append({"type": "text", "text": value})
            else:
                content.append({"type": "image"})
                images.append(value)
        text = self.tokenizer.apply_chat_template([{"role": "user", "content": content}], tokenize=False,
                                                  add_generation_prompt=True)
        vision = {}
        if images:
            pix = self.processor(images=images, return_tensors="pt")
            text = expand_image_pads(text, pix["image_grid_thw"], self.processor.merge_size)
            vision = {"pixel_values": pix["pixel_values"], "image_grid_thw": pix["image_grid_thw"]}
        ids = self.tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
        return ids, vision

    def chat(self, parts: list, seed: int = 0) -> str:
        import torch

        ids, vision = self.inputs(parts)
        device = self.model.get_input_embeddings().weight.device
        kwargs = {k: v.to(device) for k, v in vision.items()}
        sample = self.temperature > 0
        if sample:  # generate takes no generator: seed the global one, only when it is used
            torch.manual_seed(seed)
        with torch.inference_mode():
            out = self.model.generate(input_ids=ids.to(device), attention_mask=torch.ones_like(ids).to(device),
                                      max_new_tokens=self.max_new_tokens, do_sample=sample,
                                      temperature=self.temperature if sample else None, top_p=None, top_k=None,
                                      pad_token_id=self.tokenizer.pad_token_id, **kwargs)
        return self.tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)


class EndpointVLM:
    """The same turn as ``/v1/chat/completions`` with image_url parts (base64 PNG data URLs)."""

    def __init__(self, base_url: str, model: str, api_key_env: str = "MMTHINK_API_KEY", max_new_tokens: int = 160,
                 temperature: float = 0.0, timeout_s: float = 600.0):
        from mmthink.ops.sampler import EndpointSampler

        self.name = model
        self.max_new_tokens, self.temperature = max_new_tokens, temperature
        self.http = EndpointSampler(base_url, model, os.environ.get(api_key_env), timeout_s=timeout_s)

    def chat(self, parts: list, seed: int = 0) -> str:
        content = [{"type": "text", "text": v} if k == "text" else {"type": "image_url", "image_url": {"url": data_url(v)}}
                   for k, v in parts]
        body = {"model": self.name, "messages": [{"role": "user", "content": content}],
                "max_tokens": self.max_new_tokens, "temperature": self.temperature, "seed": seed}
        reply = self.http.post("/chat/completions", body)
        try:
            return reply["choices"][0]["message"]["content"] or ""
        except (KeyError, IndexError, TypeError):
            raise UserError(f"the endpoint {self.http.base_url} sent a reply without choices[0].message.content") from None


class ReplyCache:
    """Replies keyed by (backend, model, decoding settings, prompt text, frame pixels), appended to a JSONL
    file as they come, so an interrupted or repeated study asks nothing twice."""

    def __init__(self, vlm, path: Optional[Path], backend: str):
        self.vlm, self.path, self.backend, self.name = vlm, path, backend, vlm.name
        self.replies: dict = {}
        self.hits = self.misses = 0
        if path is not None and path.is_file():
            for line in path.read_text().splitlines():
                try:
                    row = json.loads(line)
                    self.replies[row["key"]] = row["reply"]
                except (ValueError, KeyError, TypeError):
                    continue  # a line cut off by an interrupted run

    def key(self, parts: list, seed: int) -> str:
        h = hashlib.sha256(json.dumps([self.backend, self.vlm.name, self.vlm.max_new_tokens, self.vlm.temperature,
                                       seed if self.vlm.temperature > 0 else 0]).encode())
        for kind, value in parts:
            h.update(kind.encode())
            h.update(value.encode() if kind == "text" else value.tobytes() + repr(value.size).encode())
        return h.hexdigest()

    def chat(self, parts: list, seed: int = 0) -> str:
        key = self.key(parts, seed)
        if key in self.replies:
            self.hits += 1
            return self.replies[key]
        self.misses += 1
        reply = self.vlm.chat(parts, seed)
        self.replies[key] = reply
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a") as f:
                f.write(json.dumps({"key": key, "reply": reply}) + "\n")
        return reply
