"""Load a model for training or inference from a recipe's ``model:`` section.

One path for every source: a tiny preset, the shipped SmolLM2, a hub id or a local folder; causal
LMs and image-text models; full precision or bitsandbytes 4/8-bit; optional extra special tokens
(embeddings resized, ``vocab_size`` kept consistent through save and reload); optional LoRA/QLoRA.
"""

from __future__ import annotations

import importlib.util
import logging
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Optional

from mmthink.errors import UserError
from mmthink.models.config import LoraConfig, ModelConfig, QuantizationConfig
from mmthink.models import vision_position
from mmthink.models.presets import MINILM, SMOLLM2, TINY_PRESETS, build_tiny, minilm_path, smollm2_path


@dataclass
class Loaded:
    model: Any
    tokenizer: Any
    image_processor: Optional[Any] = None
    new_token_ids: tuple = ()


def _torch_dtype(name: str):
    import torch

    return "auto" if name == "auto" else getattr(torch, name)


def resolve_path(name: str) -> Path | str:
    """A local folder for ``name``, or the hub id itself when no local folder matches."""
    if name == SMOLLM2:
        return smollm2_path()
    if name == MINILM:
        return minilm_path()
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            inner = path / "model"
            if (inner / "config.json").is_file() or (inner / "adapter_config.json").is_file():
                raise UserError(f"{path} is a run or checkpoint folder: its model is {inner}")
            raise UserError(f"model folder {path} has no config.json: not a transformers checkpoint")
        return path
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise UserError(f"model path not found: {name}")
    return name


def _load_config(source, trust_remote_code: bool):
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(str(source), trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as e:
        if isinstance(source, Path):
            raise UserError(f"cannot read the model config in {source}: {str(e).splitlines()[0]}") from None
        raise UserError(
            f"model '{source}' is not available: it is not a preset, not a local folder, and the hub cannot "
            f"be reached (offline). Download it where the hub is reachable and pass its folder: model.name=/path/to/model"
        ) from None


def is_image_text(name: str) -> bool:
    """Whether ``name`` (preset, folder, adapter folder or hub id) is an image-text model, read from its
    config alone (no weights loaded)."""
    import json

    if name in TINY_PRESETS or name == SMOLLM2:
        return name.endswith("-vl")
    adapter = _adapter_folder(name)
    if adapter is not None:
        return is_image_text(json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"])
    return is_vision_config(_load_config(resolve_path(name), False))


def is_vision_config(config) -> bool:
    return getattr(config, "vision_config", None) is not None


def bnb_problem() -> Optional[str]:
    """Why bitsandbytes cannot quantise here, or None when it can."""
    if importlib.util.find_spec("bitsandbytes") is None:
        return "bitsandbytes is not installed (pip install bitsandbytes)"
    try:
        import bitsandbytes  # noqa: F401
    except Exception as e:  # a build without a backend for this device fails on import
        return f"bitsandbytes cannot run here ({str(e).splitlines()[0]})"
    return None


def bnb_config(q: QuantizationConfig):
    """A ``BitsAndBytesConfig``, after checking that bitsandbytes can run here."""
    problem = bnb_problem()
    if problem:
        raise UserError(f"model.quantization.bits={q.bits} needs bitsandbytes: {problem}")
    # Its CPU backend warns on every matmul that inputs are cast; that is expected here.
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    from transformers import BitsAndBytesConfig

    if q.bits == 8:
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=q.quant_type,
        bnb_4bit_use_double_quant=q.double_quant,
        bnb_4bit_compute_dtype=_torch_dtype(q.compute_dtype),
    )


def _from_pretrained(source, config, cfg: ModelConfig):
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText

    kwargs: dict = {"dtype": _torch_dtype(cfg.dtype), "trust_remote_code": cfg.trust_remote_code}
    if cfg.attn_implementation:
        kwargs["attn_implementation"] = cfg.attn_implementation
    if cfg.device_map:
        kwargs["device_map"] = cfg.device_map
    if cfg.quantization.bits is not None:
        kwargs["quantization_config"] = bnb_config(cfg.quantization)
        if not cfg.device_map:
            import torch

            kwargs["device_map"] = {"": torch.cuda.current_device()} if torch.cuda.is_available() else "cpu"
    from safetensors import SafetensorError

    auto = AutoModelForImageTextToText if is_vision_config(config) else AutoModelForCausalLM
    try:
        return auto.from_pretrained(str(source), **kwargs)
    except SafetensorError as e:  # a truncated or garbage weights file: one line, not sixty
        raise UserError(f"the weights in {source} are not readable safetensors ({str(e).splitlines()[0]})") from None


def _load_tokenizer(source):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(source))
    if tok.pad_token is None:
        # Batched training and generation need a pad id; eos is the usual stand-in.
        tok.pad_token = tok.eos_token
    return tok


def _load_image_processor(source: Path | str, config):
    if not is_vision_config(config):
        return None
    if getattr(config, "model_type", "") in ("qwen2_vl", "qwen2_5_vl"):
        # The torchvision-backed processor cannot load here; the PIL one reads the same config.
        from transformers.models.qwen2_vl import Qwen2VLImageProcessorPil

        return Qwen2VLImageProcessorPil.from_pretrained(str(source))
    from transformers import AutoImageProcessor

    return AutoImageProcessor.from_pretrained(str(source))


def add_special_tokens(model, tokenizer, tokens) -> tuple[int, ...]:
    """Add ``tokens`` as special tokens, grow the embeddings if needed, keep ``vocab_size`` in step."""
    missing = [t for t in tokens if t not in tokenizer.get_vocab()]
    if missing:
        tokenizer.add_tokens(missing, special_tokens=True)
    if len(tokenizer) > model.get_input_embeddings().num_embeddings:
        # Mean-resizing reads the old rows' values, which a meta-device model (a dry run) does not have.
        model.resize_token_embeddings(len(tokenizer), mean_resizing=not model.get_input_embeddings().weight.is_meta)
    rows = model.get_input_embeddings().num_embeddings
    # resize_token_embeddings updates the top config; composite (vision) configs keep a second copy.
    model.config.get_text_config().vocab_size = rows
    if hasattr(model.config, "vocab_size"):
        model.config.vocab_size = rows
    return tuple(tokenizer.convert_tokens_to_ids(t) for t in tokens)


def apply_lora(model, lora: LoraConfig, quantized: bool, gradient_checkpointing: bool, new_token_ids=()):
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model, prepare_model_for_kbit_training

    if quantized:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)
    peft_cfg = PeftLoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=list(lora.target_modules),
        task_type="CAUSAL_LM",
        # Tokens added for a method must be learnable even though the embedding matrix stays frozen.
        trainable_token_indices=list(new_token_ids) or None,
    )
    return get_peft_model(model, peft_cfg)


def load_model(cfg: ModelConfig, train: bool = True) -> Loaded:
    """Build the model, tokenizer and (for image-text models) image processor named by ``cfg``.

    Every random init here (tiny presets, rows of added tokens, LoRA matrices) draws from a generator
    seeded with ``model.init_seed``, and the caller's RNG stream is left untouched.
    """
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.init_seed)
        return _load_model(cfg, train)


def _adapter_folder(name: str) -> Optional[Path]:
    path = Path(name).expanduser()
    if (path / "adapter_config.json").is_file() and not (path / "config.json").is_file():
        return path
    return None


def _load_adapter(folder: Path, cfg: ModelConfig, train: bool) -> Loaded:
    """A LoRA adapter folder saved by a run: its base model (by the name recorded at training), the
    tokenizer saved beside the adapter (with any added tokens), and the adapter on top."""
    import json

    from peft import PeftModel

    base_name = json.loads((folder / "adapter_config.json").read_text()).get("base_model_name_or_path")
    if not base_name:
        raise UserError(f"adapter {folder} does not record its base model (base_model_name_or_path)")
    base = _load_model(replace(cfg, name=base_name, special_tokens=[], lora=LoraConfig()), train=False)
    tok = _load_tokenizer(folder)
    add_special_tokens(base.model, tok, [])  # grows the embeddings to the adapter's vocabulary
    model = PeftModel.from_pretrained(base.model, str(folder), is_trainable=train)
    return Loaded(model, tok, base.image_processor)


def _load_model(cfg: ModelConfig, train: bool) -> Loaded:
    cfg.check()
    adapter = _adapter_folder(cfg.name)
    if adapter is not None:
        return _load_adapter(adapter, cfg, train)
    quantized = cfg.quantization.bits is not None
    if train and quantized and not cfg.lora.enabled:
        raise UserError("model.quantization needs model.lora.enabled=true to train (quantised weights are frozen)")
    with tempfile.TemporaryDirectory() as tmp:
        if cfg.name in TINY_PRESETS:
            model, tok, image_processor = build_tiny(cfg.name, cfg.init_seed)
            if quantized or cfg.dtype not in ("float32", "auto") or cfg.attn_implementation:
                # bitsandbytes quantises inside from_pretrained; go through a temporary folder.
                model.save_pretrained(tmp)
                model = _from_pretrained(tmp, model.config, cfg)
        else:
            source = resolve_path(cfg.name)
            config = _load_config(source, cfg.trust_remote_code)
            model = _from_pretrained(source, config, cfg)
            tok = _load_tokenizer(source)
            image_processor = _load_image_processor(source, config)
    vision_position.install(model)  # a saved tiny VLM's position code (config.vision_position)
    # Recorded by save_pretrained and by LoRA adapters: a name this function can load again.
    model.config._name_or_path = model.name_or_path = cfg.name
    new_ids = add_special_tokens(model, tok, cfg.special_tokens) if cfg.special_tokens else ()
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tok.pad_token_id
    if cfg.gradient_checkpointing and not quantized:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if cfg.lora.enabled and train:
        model = apply_lora(model, cfg.lora, quantized, cfg.gradient_checkpointing, new_ids)
    return Loaded(model, tok, image_processor, new_ids)
