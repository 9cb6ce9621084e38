"""How much accelerator memory a run needs per device: model states, activations, logits, KV cache.

Estimates, not measurements; each term is a small pure function with its formula. Bytes per
parameter ``b`` follow the weights' dtype (``model.dtype``); torch's AdamW keeps its two moments in
the parameters' dtype, so a trainable parameter costs weights b + gradient b + moments 2b (16 bytes
in fp32, 8 in bf16) — accelerate's ``estimate-memory`` figure for Adam is the same 4 × the weights.
Sharding over N devices (ZeRO, Rajbhandari et al. 2020): ZeRO-2 splits gradients and moments,
ZeRO-3 and FSDP full-shard split the weights too; DDP replicates everything.
"""

from __future__ import annotations

from dataclasses import dataclass, field

GiB = 2**30
BYTES = {"float32": 4, "bfloat16": 2, "float16": 2, "auto": 2}
QUANT_BYTES = {4: 0.5 + 4 / 64, 8: 1.0 + 4 / 64}  # packed weights + an fp32 absmax per block of 64
STRATEGIES = ("ddp", "fsdp", "zero2", "zero3")
RUNTIME_OVERHEAD = 1.0 * GiB  # CUDA context, allocator fragmentation, NCCL buffers (a rule of thumb)


@dataclass
class ModelShape:
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int
    head_dim: int = 0

    def __post_init__(self):
        self.head_dim = self.head_dim or self.hidden // self.heads


def model_shape(config) -> ModelShape:
    t = config.get_text_config()
    heads = t.num_attention_heads
    return ModelShape(t.num_hidden_layers, t.hidden_size, heads, getattr(t, "num_key_value_heads", None) or heads,
                      t.intermediate_size, t.vocab_size, getattr(t, "head_dim", None) or t.hidden_size // heads)


def model_states(total: int, trainable: int, weight_bytes: float, strategy: str, n: int,
                 frozen_bytes: float | None = None) -> dict:
    """Bytes per device of weights, gradients and AdamW moments.

    weights = P·b (frozen params at ``frozen_bytes`` when quantised), gradients = T·b, moments = 2·T·b;
    ZeRO-2 divides gradients and moments by N, ZeRO-3 / FSDP all three."""
    frozen = total - trainable
    weights = trainable * weight_bytes + frozen * (weight_bytes if frozen_bytes is None else frozen_bytes)
    grads, moments = trainable * weight_bytes, 2 * trainable * weight_bytes
    if strategy in ("zero2", "zero3", "fsdp"):
        grads, moments = grads / n, moments / n
    if strategy in ("zero3", "fsdp"):
        weights = weights / n
    return {"weights": weights, "gradients": grads, "optimizer": moments}


@dataclass
class ShapeTokens:
    batch: int  # sequences per device in one forward (the micro-batch)
    tokens: int  # tokens per sequence


def layer_activations(s: ShapeTokens, shape: ModelShape, act_bytes: int) -> float:
    """Bytes one decoder layer keeps for backward, for ``s.tokens`` tokens of ``s.batch`` sequences.

    After Korthikanti et al. (2022), with fused (SDPA / flash) attention that stores no s×s scores and
    a SwiGLU MLP, per token in 16-bit: attention 10h + 4·h_kv (the Q/K/V input, Q, K, V, the attention
    output, the output projection's input), MLP 2h + 8i (its input, gate and up outputs, the
    activation, the product), the two norms 4h; fp32 activations double it."""
    h, i = shape.hidden, shape.intermediate
    h_kv = shape.kv_heads * shape.head_dim
    per_token = (10 * h + 4 * h_kv) + (2 * h + 8 * i) + 4 * h
    return s.batch * s.tokens * per_token * act_bytes / 2


def activations(s: ShapeTokens, shape: ModelShape, act_bytes: int, checkpointing: bool) -> float:
    """All layers without recomputation; with gradient checkpointing each layer keeps only its input
    (s·b·h·act_bytes) and one layer at a time is recomputed in full."""
    one = layer_activations(s, shape, act_bytes)
    if checkpointing:
        return shape.layers * s.batch * s.tokens * shape.hidden * act_bytes + one
    return shape.layers * one


def logits_bytes(s: ShapeTokens, vocab: int, act_bytes: int) -> float:
    # The (b, s, V) logits in the activation dtype, and the fp32 copy the cross-entropy upcasts to.
    return s.batch * s.tokens * vocab * (act_bytes + 4)


def kv_cache_bytes(sequences: int, tokens: int, shape: ModelShape, act_bytes: int) -> float:
    """K and V of every layer: 2·L·h_kv·tokens·sequences·act_bytes (KV-cached sampling)."""
    return 2 * shape.layers * shape.kv_heads * shape.head_dim * tokens * sequences * act_bytes


@dataclass
class Estimate:
    """Bytes per device, by term; ``total`` adds the runtime overhead."""

    terms: dict = field(default_factory=dict)

    def add(self, name: str, value: float) -> None:
        self.terms[name] = self.terms.get(name, 0.0) + value

    @property
    def total(self) -> float:
        return sum(self.terms.values()) + RUNTIME_OVERHEAD

    def table(self) -> list[tuple[str, str]]:
        rows = [(k, f"{v / GiB:.2f} GiB") for k, v in self.terms.items() if v]
        return rows + [("runtime overhead", f"{RUNTIME_OVERHEAD / GiB:.2f} GiB"), ("total", f"{self.total / GiB:.2f} GiB")]
