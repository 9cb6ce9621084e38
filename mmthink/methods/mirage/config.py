"""The recipe schema of ``mmthink train mirage`` (Machine Mental Imagery, arXiv 2506.17218)."""

from dataclasses import dataclass, field
from typing import List, Optional

from mmthink.config import choice
from mmthink.errors import UserError
from mmthink.models.config import ModelConfig
from mmthink.rl.config import AdvantageConfig, RewardSpec, RLConfig, RolloutConfig
from mmthink.runner.config import LoggingConfig, OptimConfig, RunnerConfig

LATENT_TOKENS = ["<|latent_start|>", "<|latent_pad|>", "<|latent_end|>"]
# What fills the latent slots at inference (``ops.latent.latent_generate``'s ``latent_mode``): the model's
# own hidden states, or the ablations zeros / noise / ground-truth pooled targets.
LATENT_MODES = ("model", "zeros", "noise", "target")
# Who closes a latent block at inference: the argmax of the latent step, or the sampled token (official).
LATENT_STOPS = ("argmax", "sampled")
# How a plan is read from the last \boxed{}: official (upper-case it, keep U/D/L/R) or strict (ours).
ANSWER_RULES = ("official", "strict")


@dataclass
class MirageData:
    train_file: str = ""  # VSP-format JSONL (text_input with <image>, image_input, image_output, text_output, map_desc)
    eval_file: Optional[str] = None  # evaluated after each stage (accuracy per grid size)
    max_length: int = 1024  # tokens per training sequence; longer rows are refused
    limit: Optional[int] = None  # use only the first N training rows
    # Where images named relative to something else are found: a row's image path is tried against its
    # JSONL's folder, then that folder's ancestors (the official files name images from the repository
    # root), then image_root.
    image_root: Optional[str] = None
    # The map-blind baseline: every image (training and evaluation) replaced by a grey one of its size.
    blank_images: bool = False


@dataclass
class LatentConfig:
    k: int = 4  # latent tokens per helper image (paper: 4); 0 trains the text-only baseline
    gamma: float = 0.1  # stage-1 weight of the text cross-entropy: gamma * CE + (1 - cos)
    max_len: int = 8  # at inference, latent steps before <|latent_end|> is forced (official: 8)
    # Latent steps before a predicted <|latent_end|> is honoured; null = k. Training masks the labels of
    # the slots, so only slot k is ever taught to predict <|latent_end|>: small models predict it at
    # once; 0 follows the official rule (stop on the model's own prediction).
    min_len: Optional[int] = None
    mode: str = "model"  # inference ablation: model | zeros | noise | target (ground-truth pooled embeddings)
    stop: str = "argmax"  # who closes a block: argmax | sampled (official: the sampled token, with min_len 0)


@dataclass
class StageConfig:
    optim: OptimConfig = field(default_factory=OptimConfig)
    runner: RunnerConfig = field(default_factory=RunnerConfig)


def _stage3() -> RLConfig:
    # GRPO with a format and an accuracy reward in {0, 1} (the paper gives no other setting).
    return RLConfig(
        steps=200,
        prompts_per_step=16,
        rollout=RolloutConfig(group_size=8, max_new_tokens=64, temperature=1.0),
        advantage=AdvantageConfig(estimator="grpo", std="group"),
        rewards=[RewardSpec("vsp_format", 0.5), RewardSpec("vsp_accuracy", 1.0)],
    )


@dataclass
class MirageEval:
    max_new_tokens: int = 64  # text tokens; latent steps are bounded by latent.max_len
    batch_size: int = 16
    limit: Optional[int] = None  # rows scored; null: all
    do_sample: bool = False
    temperature: float = 1.0  # official inference: do_sample with temperature 0.7, top_p 0.9
    top_p: float = 1.0
    answer_rule: str = "official"  # official: upper-case the last \boxed{} and keep U/D/L/R; strict: ours


@dataclass
class MirageRecipe:
    method: str = "mirage"
    output_dir: str = "runs/mirage"
    seed: int = 0
    # 0: perception (image -> the map in words; for models whose LLM never saw images, e.g. the tiny
    # preset), 1: latent distillation, 2: text-only recurrence, 3: GRPO over latent rollouts
    stages: List[int] = field(default_factory=lambda: [1, 2])
    model: ModelConfig = field(default_factory=lambda: ModelConfig(name="Qwen/Qwen2.5-VL-7B-Instruct"))
    data: MirageData = field(default_factory=MirageData)
    latent: LatentConfig = field(default_factory=LatentConfig)
    stage0: StageConfig = field(default_factory=StageConfig)
    stage1: StageConfig = field(default_factory=StageConfig)
    stage2: StageConfig = field(default_factory=StageConfig)
    stage3: RLConfig = field(default_factory=_stage3)
    eval: MirageEval = field(default_factory=MirageEval)
    logging: LoggingConfig = field(default_factory=LoggingConfig)

    def check(self, world_size: int = 1) -> None:
        if self.method != "mirage":
            raise UserError(f"this recipe is for method '{self.method}', not 'mirage'")
        if not self.data.train_file:
            raise UserError("recipe key 'data.train_file' is required")
        if not self.stages or any(s not in (0, 1, 2, 3) for s in self.stages) or list(self.stages) != sorted(set(self.stages)):
            raise UserError(f"recipe key 'stages' must be an increasing list drawn from 0, 1, 2, 3; got {list(self.stages)}")
        if self.latent.k < 0:
            raise UserError(f"recipe key 'latent.k' must be >= 0; got {self.latent.k}")
        choice("latent.mode", self.latent.mode, LATENT_MODES)
        choice("latent.stop", self.latent.stop, LATENT_STOPS)
        choice("eval.answer_rule", self.eval.answer_rule, ANSWER_RULES)
        if self.latent.max_len < (self.latent.k if self.latent.min_len is None else self.latent.min_len):
            raise UserError("recipe key 'latent.max_len' must be >= latent.min_len (null min_len means latent.k)")
        if (2 in self.stages or 3 in self.stages) and self.model.gradient_checkpointing:
            # The official reproduction fell from 0.76 to 0.46 with it (their issue #7).
            raise UserError("model.gradient_checkpointing must be false in stages 2 and 3: the latent recurrence "
                            "needs gradients through the cached hidden states")
        if self.model.quantization.bits is not None:
            raise UserError("Mirage trains the full LLM (no LoRA in the paper); model.quantization is not supported")
        precisions = {f"stage{s}": (self.stage3.mixed_precision if s == 3 else self._stage(s).runner.mixed_precision)
                      for s in self.stages}
        if len(set(precisions.values())) > 1:
            # The stages share one Accelerator, whose precision is fixed when it is created.
            raise UserError(f"the stages' mixed_precision settings must be equal; got {precisions}")
        self.model.check()
        self.model.check_output(self.output_dir)
        self.logging.check()
        for stage in self.stages:
            if stage == 3:
                self.stage3.check(world_size)
                continue
            sc = self._stage(stage)
            sc.optim.check()
            sc.runner.check(world_size)

    def _stage(self, stage: int) -> StageConfig:
        return (self.stage0, self.stage1, self.stage2)[stage]
