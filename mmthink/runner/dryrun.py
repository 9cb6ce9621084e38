"""``--dry-run``: check a recipe at its paper size before a job waits in a queue.

What every method's dry run shares: build the recipe's model on the meta device with the method's
own surgery (added tokens and resize, LoRA / QLoRA, a critic), count its parameters, estimate memory
per device (``runner.memory``) for the chosen strategy and device count, run the method's real
forward and loss on a two-layer model of the paper's widths (``models.paper.shape_model``), and
decide: exit 0 when the estimate fits ``--gpu-memory``, one line and exit 2 when it does not.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Callable, Optional

from mmthink.errors import UserError
from mmthink.runner import memory as mem

STRATEGY_NAMES = {"ddp": "DDP", "fsdp": "FSDP full shard", "zero2": "ZeRO-2", "zero3": "ZeRO-3"}


@dataclass
class Target:
    """Where the run would go: ``--gpus``, ``--gpu-memory`` (GiB) and ``--strategy``."""

    gpus: int = 1
    gpu_memory: float = 80.0
    strategy: str = "ddp"

    def check(self) -> None:
        if self.gpus < 1:
            raise UserError(f"--gpus must be >= 1; got {self.gpus}")
        if not 0 < self.gpu_memory < 1e6:
            raise UserError(f"--gpu-memory must be a positive number of GiB; got {self.gpu_memory}")
        if self.strategy not in mem.STRATEGIES:
            raise UserError(f"--strategy must be one of {', '.join(mem.STRATEGIES)}; got '{self.strategy}'")


def strategy_from_accelerate(path: Optional[str] = None) -> str:
    """The strategy an accelerate config names (``$ACCELERATE_CONFIG_FILE``, else accelerate's default
    config file): DeepSpeed's ZeRO stage, FSDP, else DDP."""
    import os
    from pathlib import Path

    path = path or os.environ.get("ACCELERATE_CONFIG_FILE") or str(
        Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "accelerate" / "default_config.yaml")
    if not Path(path).is_file():
        return "ddp"
    import yaml

    cfg = yaml.safe_load(Path(path).read_text()) or {}
    kind = str(cfg.get("distributed_type", "")).upper()
    if kind == "DEEPSPEED":
        stage = int((cfg.get("deepspeed_config") or {}).get("zero_stage", 2))
        return "zero3" if stage >= 3 else "zero2"
    return "fsdp" if kind == "FSDP" else "ddp"


@dataclass
class Report:
    title: str
    facts: list = field(default_factory=list)  # (label, value) lines
    estimates: dict = field(default_factory=dict)  # phase -> mem.Estimate

    def fact(self, label: str, value) -> None:
        self.facts.append((label, value))


def lm_surgery(model_cfg, special_tokens=(), dtype: Optional[str] = None):
    """(paper model, meta model after the recipe's surgery, ids of the added tokens).

    The surgery is the training path's own: ``models.loading.add_special_tokens`` (against the real
    tokenizer length, so a resize happens only where the real run would resize) and ``apply_lora``."""
    from mmthink.models.loading import add_special_tokens, apply_lora
    from mmthink.models.paper import FactsTokenizer, meta_model, paper_model

    pm = paper_model(model_cfg.name)
    model = meta_model(pm.config, dtype or _weights_dtype(model_cfg))
    tokens = list(dict.fromkeys(list(model_cfg.special_tokens) + list(special_tokens)))
    new_ids = add_special_tokens(model, FactsTokenizer(pm.facts), tokens) if tokens and pm.facts else ()
    if model_cfg.lora.enabled:
        try:
            model = apply_lora(model, model_cfg.lora, False, False, new_ids)
        except ValueError as e:  # peft names the target modules the model lacks
            raise UserError(f"recipe key 'model.lora.target_modules': {str(e).splitlines()[0]}") from None
    return pm, model, new_ids


def _weights_dtype(model_cfg) -> str:
    return "bfloat16" if model_cfg.dtype == "auto" else model_cfg.dtype


def accelerate_figure(model) -> str:
    """``accelerate estimate-memory``'s training figure, from accelerate's own size count of the meta
    model: Adam at 4 × the weights (that command itself needs the hub)."""
    from accelerate.commands.estimate import calculate_maximum_sizes

    size, _ = calculate_maximum_sizes(model)
    return f"{4 * size / mem.GiB:.2f} GiB (Adam, 4 x the {size / mem.GiB:.2f} GiB of weights, one device, no activations)"


def training_estimate(model, model_cfg, mixed_precision: str, micro_batch: int, tokens: int, target: Target,
                      extra_trainable=None) -> mem.Estimate:
    """Per-device memory of a training step of ``model`` (and of ``extra_trainable``, e.g. a critic)."""
    from mmthink.models.paper import count_parameters

    est = mem.Estimate()
    b = mem.BYTES[_weights_dtype(model_cfg)]
    q = model_cfg.quantization.bits
    for name, m in (("policy", model), ("critic", extra_trainable)):
        if m is None:
            continue
        total, trainable = count_parameters(m)
        states = mem.model_states(total, trainable, b, target.strategy, target.gpus, mem.QUANT_BYTES.get(q))
        for k, v in states.items():
            est.add(f"{name} {k}", v)
    shape = mem.model_shape(getattr(model, "config", None) or model.base_model.config)
    act_bytes = 2 if (b == 2 or mixed_precision in ("bf16", "fp16")) else 4
    s = mem.ShapeTokens(micro_batch, tokens)
    est.add("activations", mem.activations(s, shape, act_bytes, model_cfg.gradient_checkpointing))
    est.add("logits", mem.logits_bytes(s, shape.vocab, act_bytes))
    if extra_trainable is not None:
        est.add("activations", mem.activations(s, shape, act_bytes, model_cfg.gradient_checkpointing))
    return est


def rl_estimate(model, model_cfg, rl, tokens: int, target: Target, critic=None) -> mem.Estimate:
    """A training step of an RL stage (``rl``: an RLConfig) plus the KV cache of its rollout batch."""
    est = training_estimate(model, model_cfg, rl.mixed_precision, rl.micro_batch_size, tokens, target, critic)
    est.add("KV cache (rollouts)", mem.kv_cache_bytes(rl.rollout.batch_size, tokens, mem.model_shape(model.config),
                                                      mem.BYTES[_weights_dtype(model_cfg)]))
    return est


def inference_estimate(model, model_cfg, batch: int, tokens: int, target: Target, new_tokens: int = 0) -> mem.Estimate:
    """Per-device memory of a no-grad forward (or KV-cached generation of ``new_tokens``)."""
    from mmthink.models.paper import count_parameters

    est = mem.Estimate()
    total, _ = count_parameters(model)
    b = mem.BYTES[_weights_dtype(model_cfg)]
    q = model_cfg.quantization.bits
    est.add("weights", total * (mem.QUANT_BYTES[q] if q else b) / (target.gpus if target.strategy in ("fsdp", "zero3") else 1))
    shape = mem.model_shape(model.config)
    act = 2 if b == 2 else 4
    # Without grad a layer's activations live only while it runs: one layer's worth of the prefill (a
    # decoding step holds one token's), plus the logits.
    est.add("activations", mem.layer_activations(mem.ShapeTokens(batch, tokens), shape, act))
    est.add("logits", mem.logits_bytes(mem.ShapeTokens(batch, 1 if new_tokens else tokens), shape.vocab, act))
    if new_tokens:
        est.add("KV cache", mem.kv_cache_bytes(batch, tokens + new_tokens, shape, act))
    return est


def shape_check(name: str, run: Callable[[], None]) -> None:
    """Run ``run`` (a forward and loss on the two-layer model); a shape or config error becomes one line."""
    try:
        run()
    except UserError:
        raise
    except (RuntimeError, ValueError, IndexError, TypeError, KeyError, AttributeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"dry run: {name} fails at the paper's widths: {type(e).__name__}: {first}") from None


def finish(report: Report, target: Target, out=None) -> dict:
    """Print the report; a phase whose estimate exceeds the target's memory is a user error."""
    out = out or sys.stdout
    width = max([len(k) for k, _ in report.facts] + [20])
    print(f"dry run: {report.title}", file=out)
    for k, v in report.facts:
        print(f"  {k:<{width}}  {v}", file=out)
    where = f"{target.gpus} x {target.gpu_memory:g} GiB, {STRATEGY_NAMES[target.strategy]}"
    worst = None
    for phase, est in report.estimates.items():
        print(f"  memory per device, {phase} ({where}):", file=out)
        for k, v in est.table():
            print(f"    {k:<{width}}  {v}", file=out)
        if worst is None or est.total > worst[1].total:
            worst = (phase, est)
    metrics = {"fits": True}
    if worst is not None:
        need = worst[1].total / mem.GiB
        metrics = {"fits": need <= target.gpu_memory, "estimate_gib": round(need, 2)}
        if need > target.gpu_memory:
            hint = "" if target.strategy in ("zero3", "fsdp") else "; shard it (--strategy zero3 or fsdp) over more --gpus,"
            raise UserError(f"dry run: {worst[0]} needs about {need:.1f} GiB per device, more than --gpu-memory "
                            f"{target.gpu_memory:g} GiB ({where}){hint} or lower the micro-batch or sequence length")
    if worst is None:
        print("  fits: nothing to place on a device", file=out)
    else:
        print(f"  fits: estimated peak {metrics['estimate_gib']} GiB of {target.gpu_memory:g} GiB", file=out)
    return metrics


def test_tokenizer(pm):
    """The real tokenizer where its folder is on this machine, else the tiny presets' (its 2k ids are
    valid in any paper vocabulary, and it has the chat template and the Qwen-VL vision tokens)."""
    if pm.folder is not None:
        from mmthink.models.loading import _load_tokenizer

        return _load_tokenizer(pm.folder)
    from mmthink.models.tokenizer import load_tiny_tokenizer

    return load_tiny_tokenizer()


def vision_token_ids(tok) -> dict:
    """The config's special-token ids, as ``tok`` spells them (for a shape model read by ``tok``)."""
    names = {"image_token_id": "<|image_pad|>", "video_token_id": "<|video_pad|>",
             "vision_start_token_id": "<|vision_start|>", "vision_end_token_id": "<|vision_end|>"}
    vocab = tok.get_vocab()
    ids = {k: vocab[t] for k, t in names.items() if t in vocab}
    return {**ids, "pad_token_id": tok.pad_token_id, "eos_token_id": tok.eos_token_id, "bos_token_id": None}


def lm_shape_model(pm, model_cfg, tok, tokens=()):
    """The two-layer model of ``pm`` read by ``tok``, after the recipe's surgery (tokens, LoRA)."""
    from mmthink.models.loading import add_special_tokens, apply_lora
    from mmthink.models.paper import shape_model

    model = shape_model(pm.config, token_ids=vision_token_ids(tok))
    tokens = list(dict.fromkeys(list(model_cfg.special_tokens) + list(tokens)))
    new_ids = add_special_tokens(model, tok, tokens) if tokens else ()
    if model_cfg.lora.enabled:
        model = apply_lora(model, model_cfg.lora, False, False, new_ids)
    return model


def chat_loss_check(model, tok, rows, max_length: int) -> float:
    """The SFT loss (``runner.sft.sft_loss``) of two chat rows through the real tokenisation and collate."""
    import math

    import torch

    from mmthink.data.chat import collate_right
    from mmthink.runner.sft import sft_loss, tokenize_rows

    examples = tokenize_rows(list(rows)[:2], tok, max_length, packing=False)
    if not examples:
        raise UserError("dry run: no row fits data.max_length")
    with torch.no_grad():
        out = sft_loss(model, collate_right(examples, tok.pad_token_id))
    loss = float(out.loss_sum) / max(float(out.num_items), 1.0)
    if not math.isfinite(loss):
        raise UserError(f"dry run: the loss at the paper's widths is {loss}")
    return loss
