"""What the server serves: the model, how its prompts are built, and the method mode of its checkpoint.

The mode is read from the run that wrote the checkpoint (``resolved_config.yaml`` beside or under the
run folder of ``runs/<name>/model``) or from ``--recipe``: a Mirage run decodes with latent tokens
and its ``latent`` settings; any other checkpoint decodes plain text. Read as plain YAML, so the
server depends on no method.
"""

from __future__ import annotations

import base64
import binascii
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from mmthink import registry
from mmthink.errors import UserError
from mmthink.ops.vlm import expand_image_pads

LATENT_NAMES = ("<|latent_start|>", "<|latent_pad|>", "<|latent_end|>")


class BadRequest(ValueError):
    """A request the server refuses with a 400 (its message names the field)."""

    def __init__(self, message: str, param: Optional[str] = None):
        super().__init__(message)
        self.param = param


@dataclass
class LatentDefaults:
    """Latent decoding settings of a Mirage checkpoint (its recipe's ``latent`` section)."""

    k: int = 4
    max_len: int = 8
    min_len: Optional[int] = None
    mode: str = "model"
    stop: str = "argmax"


def run_recipe(model_dir: Path) -> Optional[Path]:
    """The resolved recipe of the run that wrote ``model_dir`` (runs/X/model): runs/X/resolved_config.yaml,
    else the last stage's runs/X/stage*/resolved_config.yaml."""
    run = model_dir.parent
    if (run / "resolved_config.yaml").is_file():
        return run / "resolved_config.yaml"
    stages = sorted(run.glob("stage*/resolved_config.yaml"))
    return stages[-1] if stages else None


def recipe_source(model_name: str, recipe: Optional[str]) -> Optional[Path]:
    """``--recipe``, else the resolved recipe of the run that wrote the checkpoint folder, else None."""
    return Path(recipe) if recipe else (run_recipe(Path(model_name)) if Path(model_name).is_dir() else None)


def read_mode(model_name: str, recipe: Optional[str]) -> tuple[str, Optional[LatentDefaults]]:
    """(method, latent defaults or None) from ``--recipe`` or the checkpoint's own run."""
    from omegaconf import OmegaConf

    source = recipe_source(model_name, recipe)
    if source is None:
        return "", None
    if not source.is_file():
        raise UserError(f"recipe not found: {source}")
    try:
        cfg = OmegaConf.to_container(OmegaConf.load(source), resolve=False)
    except Exception as e:
        raise UserError(f"cannot read the recipe {source}: {str(e).splitlines()[0]}") from None
    method = str(cfg.get("method", ""))
    if method != "mirage":
        return method, None
    known = LatentDefaults.__dataclass_fields__
    return method, LatentDefaults(**{k: v for k, v in (cfg.get("latent") or {}).items() if k in known})


class Served:
    """A loaded model ready to serve: its name, tokenizer, limits and prompt builders."""

    def __init__(self, name: str, loaded, method: str, latent_defaults: Optional[LatentDefaults],
                 max_input_tokens: int, max_total_tokens: int, allow_local_files: bool = False):
        self.name, self.loaded, self.method = name, loaded, method
        self.model, self.tokenizer, self.processor = loaded.model, loaded.tokenizer, loaded.image_processor
        self.latent_defaults = latent_defaults
        self.max_input_tokens, self.max_total_tokens = max_input_tokens, max_total_tokens
        self.allow_local_files = allow_local_files
        self.scorer = None  # a method's multiple-choice scorer (--calibrator): .score(question, options) -> dict
        self.mode = None  # a method's per-request loop (EvoScale): see registry.Method.serve_mode
        self.latent = None
        if latent_defaults is not None:
            from mmthink.ops.latent import LatentTokens

            try:
                self.latent = LatentTokens.from_tokenizer(self.tokenizer, LATENT_NAMES)
            except ValueError:
                raise UserError(f"{name} was trained by a Mirage run but its tokenizer lacks the latent tokens") from None

    @property
    def is_vision(self) -> bool:
        return self.processor is not None

    def encode(self, text: str) -> list:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def chat_prompt(self, messages: list) -> tuple[list, Optional[dict]]:
        """Token ids of the chat-templated conversation (with the assistant header) and, for images, the
        processor's pixel values: one ``<|image_pad|>`` per merged vision token."""
        template, images = [], []
        for i, m in enumerate(messages):
            content, role = m["content"], "system" if m["role"] == "developer" else m["role"]
            if isinstance(content, str) or content is None:
                template.append({"role": role, "content": content or ""})
                continue
            parts = []
            for j, part in enumerate(content):
                if part["type"] == "text":
                    if part.get("text") is None:
                        raise BadRequest("a text part needs its text", f"messages[{i}].content[{j}].text")
                    parts.append({"type": "text", "text": part["text"]})
                else:
                    if not (part.get("image_url") or {}).get("url"):
                        raise BadRequest("an image_url part needs image_url.url", f"messages[{i}].content[{j}]")
                    if not self.is_vision:
                        raise BadRequest(f"model '{self.name}' takes no images", f"messages[{i}].content[{j}]")
                    images.append(self._image(part["image_url"]["url"], f"messages[{i}].content[{j}].image_url"))
                    parts.append({"type": "image"})
            if not images or all(p["type"] == "text" for p in parts):  # plain text: the template's string form
                template.append({"role": role, "content": "".join(p["text"] for p in parts)})
            else:
                template.append({"role": role, "content": parts})
        if getattr(self.tokenizer, "chat_template", None) is None:
            raise BadRequest(f"model '{self.name}' has no chat template: use /v1/completions")
        text = self.tokenizer.apply_chat_template(template, tokenize=False, add_generation_prompt=True)
        if not images:
            return self.encode(text), None
        pix = self.processor(images=images, return_tensors="pt")
        try:
            text = expand_image_pads(text, pix["image_grid_thw"], self.processor.merge_size)
        except UserError:
            raise BadRequest("the chat template placed a different number of images than the request has") from None
        return self.encode(text), {"pixel_values": pix["pixel_values"], "image_grid_thw": pix["image_grid_thw"]}

    def _image(self, url: str, param: str):
        from PIL import Image, UnidentifiedImageError

        if url.startswith("data:"):
            header, _, data = url.partition(",")
            if ";base64" not in header:
                raise BadRequest("image data URLs must be base64 (data:image/png;base64,...)", param)
            try:
                raw = base64.b64decode(data, validate=True)
            except (binascii.Error, ValueError):
                raise BadRequest("the image data URL is not valid base64", param) from None
            source = io.BytesIO(raw)
        elif url.startswith(("http://", "https://")):
            raise BadRequest("the server fetches no URLs: send the image as a base64 data URL", param)
        elif self.allow_local_files:
            path = Path(url.removeprefix("file://"))
            if not path.is_file():
                raise BadRequest("image file not found", param)
            source = path
        else:
            raise BadRequest("local image files are refused (start the server with --allow-local-files); "
                             "send a base64 data URL", param)
        try:
            with Image.open(source) as im:
                return im.convert("RGB")
        except (UnidentifiedImageError, OSError):
            raise BadRequest("the image cannot be decoded", param) from None


def load_served(name: str, recipe: Optional[str], dtype: str, max_input_tokens: Optional[int],
                max_total_tokens: Optional[int], allow_local_files: bool, served_name: Optional[str] = None,
                device: str = "cpu", bits: Optional[int] = None) -> Served:
    """Load ``name`` (preset, run model folder, LoRA adapter folder or hub id) through the shared model layer."""
    import torch

    from mmthink.models.config import ModelConfig, QuantizationConfig
    from mmthink.models.loading import load_model

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {device}: no CUDA device is visible")
    method, latent = read_mode(name, recipe)
    cfg = ModelConfig(name=name, dtype=dtype, quantization=QuantizationConfig(bits=bits))
    cfg.check()
    loaded = load_model(cfg, train=False)
    if bits is None:  # bitsandbytes places quantised weights itself
        loaded.model.to(device)
    loaded.model.eval()
    context = getattr(loaded.model.config, "max_position_embeddings", None) or 4096
    text_config = getattr(loaded.model.config, "text_config", None)
    if text_config is not None:
        context = getattr(text_config, "max_position_embeddings", context)
    total = max_total_tokens or context
    if total > context:
        raise UserError(f"--max-total-tokens {total} is more than the model's context ({context} tokens)")
    inputs = max_input_tokens or max(total // 2, 1)
    if inputs >= total:
        raise UserError(f"--max-input-tokens {inputs} must be below --max-total-tokens {total}")
    served = Served(served_name or name, loaded, method, latent, inputs, total, allow_local_files)
    hook = registry.serve_mode(method)
    if hook is not None:
        served.mode = registry.load(hook)(str(recipe_source(name, recipe)))
    return served
