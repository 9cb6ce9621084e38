"""The models the full recipes name, at their real size, without their weights or a hub.

``assets/configs/<org>--<name>/`` ships each one's ``config.json`` (the published values) and
``tokenizer_facts.json`` (the facts a method's model surgery needs: the tokenizer's length — which
differs from the embedding rows, 151,665 vs 152,064 for Qwen2.5 — its special tokens and ids, the
chat-template family, and the published parameter count); ``assets/configs/PROVENANCE.md`` says where
each value comes from. A local folder or the hub cache is preferred when it exists.

Two models are built from a config: ``meta_model`` (every shape, no storage: parameter counts and
memory) and ``shape_model`` (real values, the paper's widths and vocabulary but two layers, the vision
tower too: the method's own forward and loss run on it, which meta tensors cannot do where code
depends on values — M-RoPE indices, image-token scatter, latent decisions).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from mmthink.errors import UserError
from mmthink.paths import assets_dir


def shipped_config_dir(name: str) -> Optional[Path]:
    folder = assets_dir() / "configs" / name.replace("/", "--")
    return folder if (folder / "config.json").is_file() else None


def shipped_models() -> list[str]:
    root = assets_dir() / "configs"
    return sorted(json.loads((d / "tokenizer_facts.json").read_text())["name"] for d in root.iterdir()
                  if (d / "tokenizer_facts.json").is_file())


@dataclass
class PaperModel:
    name: str
    config: object  # a transformers PretrainedConfig
    facts: dict  # tokenizer_facts.json, or what a real tokenizer says
    source: str  # where the config was read
    folder: Optional[Path] = None  # a local checkpoint folder (with its tokenizer), when there is one


def paper_model(name: str) -> PaperModel:
    """The config and tokenizer facts of ``name``: a preset, a local folder or cached hub model, else the
    shipped config; a name none of these has is a user error."""
    from transformers import AutoConfig

    from mmthink.models.loading import resolve_path
    from mmthink.models.presets import TINY_PRESETS, build_tiny

    if name in TINY_PRESETS:
        model, tok, _ = build_tiny(name, 0)
        return PaperModel(name, model.config, _facts_of(tok, name), "preset")
    try:
        source = resolve_path(name)
        if isinstance(source, Path):
            return _local(name, source)
        return PaperModel(name, AutoConfig.from_pretrained(name), {}, "hub cache")
    except (OSError, ValueError):
        pass
    folder = shipped_config_dir(name)
    if folder is None:
        raise UserError(f"no config for model '{name}': not a preset, a local folder or in the hub cache, and "
                        f"not shipped under assets/configs (shipped: {', '.join(shipped_models())})")
    return PaperModel(name, AutoConfig.from_pretrained(str(folder)),
                      json.loads((folder / "tokenizer_facts.json").read_text()), f"assets/configs/{folder.name}")


def _local(name: str, folder: Path) -> PaperModel:
    """A local folder: its config, and its tokenizer's facts (or a ``tokenizer_facts.json`` beside the
    config when the folder holds no tokenizer, e.g. a config edited for a test)."""
    from transformers import AutoConfig, AutoTokenizer

    config = AutoConfig.from_pretrained(str(folder))
    if any((folder / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")):
        return PaperModel(name, config, _facts_of(AutoTokenizer.from_pretrained(str(folder)), name), str(folder), folder)
    facts = folder / "tokenizer_facts.json"
    return PaperModel(name, config, json.loads(facts.read_text()) if facts.is_file() else {}, str(folder))


def _facts_of(tok, name: str) -> dict:
    return {"name": name, "tokenizer_len": len(tok),
            "special_tokens": {t: tok.convert_tokens_to_ids(t) for t in tok.all_special_tokens + list(
                getattr(tok, "added_tokens_encoder", {}))},
            "pad_token": tok.pad_token, "eos_token": tok.eos_token}


class FactsTokenizer:
    """The part of a tokenizer that model surgery reads (its length, its special tokens, adding tokens),
    built from the tokenizer facts; ``add_special_tokens`` runs on it as on a real one."""

    def __init__(self, facts: dict):
        self._len = int(facts.get("tokenizer_len") or 0)
        self._vocab = dict(facts.get("special_tokens") or {})
        self.pad_token = facts.get("pad_token") or facts.get("eos_token")

    def get_vocab(self) -> dict:
        return dict(self._vocab)

    def add_tokens(self, tokens, special_tokens: bool = False) -> int:
        for t in tokens:
            if t not in self._vocab:
                self._vocab[t] = self._len
                self._len += 1
        return len(tokens)

    def convert_tokens_to_ids(self, token):
        return self._vocab[token]

    def __len__(self) -> int:
        return self._len


def model_class(config):
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText, AutoModelForMaskedLM

    archs = getattr(config, "architectures", None) or []
    if any("MaskedLM" in a for a in archs):
        return AutoModelForMaskedLM
    return AutoModelForImageTextToText if getattr(config, "vision_config", None) is not None else AutoModelForCausalLM


def meta_model(config, dtype: str = "bfloat16"):
    """The model of ``config`` on the meta device: every parameter's shape, no storage."""
    import torch

    with torch.device("meta"):
        return model_class(config).from_config(config, dtype=getattr(torch, dtype))


def shape_config(config, layers: int = 2, token_ids: Optional[dict] = None):
    """``config`` with ``layers`` decoder layers (and vision blocks) and the same widths and vocabulary;
    ``token_ids`` remaps the special-token ids the model reads (e.g. ``image_token_id``) to a test
    tokenizer's."""
    small = copy.deepcopy(config)
    text = small.get_text_config()
    text.num_hidden_layers = min(layers, text.num_hidden_layers)
    if hasattr(text, "max_window_layers"):
        text.max_window_layers = min(text.max_window_layers, text.num_hidden_layers)
    if hasattr(text, "layer_types") and text.layer_types:
        text.layer_types = text.layer_types[: text.num_hidden_layers]
    if text is not small and hasattr(small, "num_hidden_layers"):
        small.num_hidden_layers = text.num_hidden_layers
    vision = getattr(small, "vision_config", None)
    if vision is not None and hasattr(vision, "depth"):
        vision.depth = min(layers, vision.depth)
        if getattr(vision, "fullatt_block_indexes", None):
            vision.fullatt_block_indexes = [vision.depth - 1]  # keep one full-attention block, as the paper's last
    for key, value in (token_ids or {}).items():
        for c in {id(small): small, id(text): text}.values():
            if hasattr(c, key):
                setattr(c, key, value)
    return small


def count_parameters(model) -> tuple[int, int]:
    """(total, trainable) parameters; tied weights count once."""
    seen, total, trainable = set(), 0, 0
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
        trainable += p.numel() if p.requires_grad else 0
    return total, trainable


def shape_model(config, layers: int = 2, token_ids: Optional[dict] = None, dtype: str = "bfloat16", seed: int = 0):
    """A real-valued model of ``config``'s widths and vocabulary with ``layers`` layers, on the CPU."""
    import torch

    from transformers.initialization import no_init_weights

    small = shape_config(config, layers, token_ids)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        # The model's own init of a 152k vocabulary takes ~20 s on 2 cores, and drawing every value ~10 s;
        # shapes need finite, varied values, so each tensor is filled with a tiled random block.
        with no_init_weights():
            model = model_class(small).from_config(small, dtype=getattr(torch, dtype))
        block = torch.empty(2**20 + 7).uniform_(-0.02, 0.02).to(getattr(torch, dtype))  # no row width divides it
        size = block.numel()
        with torch.no_grad():
            for p in model.parameters():
                flat, full = p.view(-1), p.numel() // size
                flat[: full * size].view(full, size).copy_(block.expand(full, size))
                flat[full * size :].copy_(block[: p.numel() - full * size])
    return model.eval()
