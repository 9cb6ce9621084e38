"""The recipe schema of ``mmthink train satori`` (Chain-of-Action-Thought, arXiv 2502.02508)."""

from dataclasses import dataclass, field
from typing import Dict, List, Optional

from mmthink.config import choice
from mmthink.errors import UserError
from mmthink.models.config import ModelConfig
from mmthink.rl.config import AdvantageConfig, LossConfig, RLConfig, RolloutConfig
from mmthink.runner.config import LoggingConfig, OptimConfig, RunnerConfig

# The meta-action tokens of Chain-of-Action-Thought, and the kinds of synthetic demonstration that teach them.
CONTINUE, REFLECT, EXPLORE = "<|continue|>", "<|reflect|>", "<|explore|>"
META_TOKENS = (CONTINUE, REFLECT, EXPLORE)
DEMO_KINDS = ("continue", "reflect", "explore")
DEFAULT_MIX = {"continue": 0.4, "reflect": 0.4, "explore": 0.2}
# Round 1 is format tuning then RL; round 2 distils the RL policy's solutions into the base, then RL again.
STAGES = ("format", "rl", "distill", "rl2")


@dataclass
class SatoriData:
    # Math rows (ours, GSM8K or MATH format). Empty: generate procedural problems into output_dir/data.
    train_file: str = ""
    eval_file: Optional[str] = None  # held-out rows; empty with an empty train_file: generated too
    n_train: int = 2000  # generated problems (when train_file is empty)
    n_eval: int = 200
    kinds: List[str] = field(default_factory=lambda: ["chain", "linear", "word"])
    levels: List[int] = field(default_factory=lambda: [1, 2, 3])
    limit: Optional[int] = None  # use only the first N training rows


@dataclass
class FormatConfig:
    """Stage 1: format tuning on synthetic COAT demonstrations (plain CoT with ``demos: cot``)."""

    demos: str = "coat"  # coat | cot (the baseline: the same problems with plain chain-of-thought)
    mix: Dict[str, float] = field(default_factory=lambda: dict(DEFAULT_MIX))  # demo kinds drawn in these ratios
    max_length: int = 512
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-5))
    runner: RunnerConfig = field(default_factory=lambda: RunnerConfig(epochs=1, batch_size=128, micro_batch_size=4))


@dataclass
class RewardConfig:
    # r = sigmoid(outcome RM score) + (correct - 1) + reflection bonus, clipped to [-clip, clip].
    outcome_model: Optional[str] = None  # a sequence-classification model (path or hub id); null: no RM term
    reflect_bonus: float = 0.5  # +bonus when a restart from a wrong prefix is solved, -bonus when one from a right prefix fails
    clip: float = 10.0


@dataclass
class RAEConfig:
    """Restart and Explore: restart states cut from the policy's own past trajectories."""

    enabled: bool = True
    ratio: float = 0.5  # share of each step's prompts that are restart states (once the buffers hold some)
    max_back: int = 2  # a restart cuts T in [0, max_back] steps back from the last reasoning step
    buffer_size: int = 2048  # trajectories kept per buffer (correct, wrong); oldest dropped first


@dataclass
class DistillConfig:
    """Round 2, stage ``distill``: the RL policy samples solutions to the training problems; those that end
    on the right answer are the SFT data of the base model, which stage ``rl2`` trains by RL again."""

    base: Optional[str] = None  # the model distilled into (path or hub id); null: model.name, the recipe's base
    prompts: Optional[int] = None  # training problems the policy solves; null: all
    samples: int = 4  # solutions sampled per problem (correct, distinct ones are kept)
    temperature: float = 0.6
    top_p: float = 1.0
    max_new_tokens: int = 2048
    batch_size: int = 32  # sequences decoded together
    max_length: int = 2048  # prompt + solution tokens in SFT
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-5))
    runner: RunnerConfig = field(default_factory=lambda: RunnerConfig(epochs=1, batch_size=128, micro_batch_size=4))


@dataclass
class SatoriEval:
    max_new_tokens: int = 512
    batch_size: int = 32
    limit: Optional[int] = None  # held-out rows scored; null: all
    restarts: int = 100  # wrong-prefix restart states scored for the reflection-fix rate


def _paper_rl() -> RLConfig:
    # PPO with a critic and GAE (gamma 1, lambda 0.95), clip 0.2, value clip 0.2, no KL, advantages
    # whitened over the rollout batch, actor lr 2e-7, critic lr 5e-6, temperature 0.6, one sample a prompt.
    return RLConfig(
        steps=500,
        prompts_per_step=128,
        rollout=RolloutConfig(group_size=1, max_new_tokens=2048, temperature=0.6),
        advantage=AdvantageConfig(estimator="gae", gamma=1.0, lam=0.95, whiten=True),
        loss=LossConfig(eps_low=0.2, eps_high=0.2, value_clip=0.2, kl_coef=0.0),
        optim=OptimConfig(lr=2e-7, scheduler="constant"),
        critic_optim=OptimConfig(lr=5e-6, scheduler="constant"),
    )


@dataclass
class SatoriRecipe:
    method: str = "satori"
    output_dir: str = "runs/satori"
    seed: int = 0
    stages: List[str] = field(default_factory=lambda: ["format", "rl"])
    model: ModelConfig = field(default_factory=lambda: ModelConfig(name="Qwen/Qwen2.5-Math-7B"))
    data: SatoriData = field(default_factory=SatoriData)
    format: FormatConfig = field(default_factory=FormatConfig)
    rl: RLConfig = field(default_factory=_paper_rl)
    reward: RewardConfig = field(default_factory=RewardConfig)
    rae: RAEConfig = field(default_factory=RAEConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    eval: SatoriEval = field(default_factory=SatoriEval)
    logging: LoggingConfig = field(default_factory=LoggingConfig)

    def check(self, world_size: int = 1) -> None:
        if self.method != "satori":
            raise UserError(f"this recipe is for method '{self.method}', not 'satori'")
        stages = list(self.stages)
        if not stages or stages != [s for s in STAGES if s in stages]:
            raise UserError(f"recipe key 'stages' must be stages of {list(STAGES)} in this order, e.g. [format, rl] "
                            f"(round 1) or [format, rl, distill, rl2] (two rounds); got {stages}")
        if "rl2" in stages and "distill" not in stages:
            raise UserError("recipe key 'stages': rl2 is the RL after distill; without distill use rl")
        if "distill" in stages:
            if "rl" not in stages and not self.distill.base:
                raise UserError("recipe key 'distill.base' must name the model to distil into when stages start at "
                                "distill (model.name is then the RL policy that teaches)")
            if self.model.lora.enabled:
                raise UserError("recipe key 'stages': distill resets the model to its base, which LoRA does not "
                                "support yet; set model.lora.enabled=false or stop after rl")
            if self.distill.samples < 1:  # the shared ranges allow 0 samples (eval sample counts)
                raise UserError(f"recipe key 'distill.samples' must be >= 1; got {self.distill.samples}")
            if self.distill.prompts is not None and self.distill.prompts < 1:
                raise UserError(f"recipe key 'distill.prompts' must be >= 1 or null; got {self.distill.prompts}")
            self.distill.optim.check()
            self.distill.runner.check(world_size)
        choice("format.demos", self.format.demos, ["coat", "cot"])
        unknown = set(self.format.mix) - set(DEMO_KINDS)
        if unknown:
            raise UserError(f"recipe key 'format.mix': unknown demo kind(s) {sorted(unknown)}; known: {', '.join(DEMO_KINDS)}")
        if not 0 <= self.rae.ratio <= 1:
            raise UserError(f"recipe key 'rae.ratio' must be in [0, 1]; got {self.rae.ratio}")
        if self.rae.max_back < 0 or self.rae.buffer_size < 1:
            raise UserError("recipe keys 'rae.max_back' must be >= 0 and 'rae.buffer_size' >= 1")
        if self.reward.clip <= 0:
            raise UserError(f"recipe key 'reward.clip' must be > 0; got {self.reward.clip}")
        if not self.data.train_file and (self.data.n_train < 1 or self.data.n_eval < 0):
            raise UserError("recipe keys 'data.n_train' must be >= 1 and 'data.n_eval' >= 0")
        missing = [t for t in META_TOKENS if t not in self.model.special_tokens]
        self.model.special_tokens = list(self.model.special_tokens) + missing
        self.model.check()
        self.model.check_output(self.output_dir)
        self.logging.check()
        if "format" in self.stages:
            self.format.optim.check()
            self.format.runner.check(world_size)
        if "rl" in self.stages or "rl2" in self.stages:
            self.rl.check(world_size)
        precisions = {self.format.runner.mixed_precision if s == "format" else self.distill.runner.mixed_precision
                      if s == "distill" else self.rl.mixed_precision for s in self.stages}
        if len(precisions) > 1:
            raise UserError("the stages share one accelerator: format.runner.mixed_precision, rl.mixed_precision and "
                            f"distill.runner.mixed_precision must be equal; got {sorted(precisions)}")
