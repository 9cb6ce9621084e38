"""The ``model:`` recipe section: which weights, in which precision, with which adapters."""

import os
from dataclasses import dataclass, field
from typing import List, Optional

from mmthink.config import choice
from mmthink.errors import UserError


@dataclass
class QuantizationConfig:
    bits: Optional[int] = None  # 4 or 8 through bitsandbytes; null loads full precision
    quant_type: str = "nf4"  # nf4 | fp4 (4-bit only)
    double_quant: bool = True  # quantise the quantisation constants too (4-bit only)
    compute_dtype: str = "float32"  # dtype of the matmuls on the dequantised weights


@dataclass
class LoraConfig:
    enabled: bool = False  # train low-rank adapters instead of all weights (QLoRA with quantization.bits)
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: List[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])


@dataclass
class ModelConfig:
    name: str = "smollm2-135m-instruct"  # a preset (tiny-llama, ...), a hub id, or a local path
    dtype: str = "float32"  # float32 | bfloat16 | float16 | auto
    device_map: Optional[str] = None  # e.g. auto, cpu; null lets accelerate place the model
    attn_implementation: Optional[str] = None  # sdpa | eager | flash_attention_2; null: transformers' default
    special_tokens: List[str] = field(default_factory=list)  # added to the vocabulary; embeddings resized
    gradient_checkpointing: bool = False
    init_seed: int = 0  # seeds every random init at load: tiny presets, added token rows, LoRA
    trust_remote_code: bool = False
    quantization: QuantizationConfig = field(default_factory=QuantizationConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)

    def check(self, prefix: str = "model") -> None:
        choice(f"{prefix}.dtype", self.dtype, ["float32", "bfloat16", "float16", "auto"])
        q = self.quantization
        if q.bits is not None:
            choice(f"{prefix}.quantization.bits", q.bits, [4, 8])
            choice(f"{prefix}.quantization.quant_type", q.quant_type, ["nf4", "fp4"])
            choice(f"{prefix}.quantization.compute_dtype", q.compute_dtype, ["float32", "bfloat16", "float16"])
        if q.bits is not None and _sharding_strategy():
            raise UserError(
                f"{prefix}.quantization.bits={q.bits} cannot be combined with {_sharding_strategy()}: quantised weights "
                "are not sharded; launch with recipes/accelerate/ddp.yaml instead"
            )
        if self.lora.enabled and self.lora.r < 1:
            raise UserError(f"recipe key '{prefix}.lora.r' must be >= 1; got {self.lora.r}")
        if self.lora.enabled and not self.lora.target_modules:
            raise UserError(f"recipe key '{prefix}.lora.target_modules' is empty: name the modules LoRA adapts "
                            "(e.g. [q_proj, v_proj])")
        if not self.name:
            raise UserError(f"recipe key '{prefix}.name' is empty")

    def check_output(self, output_dir: str) -> None:
        """Refuse a run whose final ``model/`` would replace the checkpoint it starts from."""
        final = os.path.realpath(os.path.join(output_dir, "model"))
        if os.path.isdir(self.name) and os.path.realpath(self.name) == final:
            raise UserError(f"model.name={self.name} is this run's own output ({output_dir}/model) and would be "
                            "overwritten; set output_dir to a new folder")


def _sharding_strategy() -> Optional[str]:
    """FSDP or DeepSpeed ZeRO-3 when ``accelerate launch`` set them up for this process."""
    if os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true":
        return "FSDP"
    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true" and os.environ.get(
        "ACCELERATE_DEEPSPEED_ZERO_STAGE"
    ) == "3":
        return "DeepSpeed ZeRO-3"
    return None
