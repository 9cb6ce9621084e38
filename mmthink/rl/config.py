"""The ``rl`` section every RL recipe shares (GRPO, PPO with a critic, REINFORCE baselines)."""

from dataclasses import dataclass, field
from typing import List, Optional

from mmthink.config import choice
from mmthink.errors import UserError
from mmthink.runner.config import OptimConfig, check_resume

ESTIMATORS = ("grpo", "reinforce", "gae")
AGGREGATIONS = ("token-mean", "seq-mean-token-mean", "token-sum-norm")


@dataclass
class RewardSpec:
    name: str = ""  # a function registered with ``mmthink.rl.rewards.register_reward``
    weight: float = 1.0


@dataclass
class RolloutConfig:
    group_size: int = 8  # G completions per prompt (GRPO's group)
    max_new_tokens: int = 256
    temperature: float = 1.0  # also divides the logits of the log-prob pass, as in TRL and verl
    top_p: float = 1.0
    stop: List[str] = field(default_factory=list)  # a row stops after any of these strings
    batch_size: int = 64  # sequences decoded together on one device


@dataclass
class AdvantageConfig:
    estimator: str = "grpo"  # grpo (group z-score) | reinforce (baseline) | gae (PPO critic)
    std: str = "group"  # grpo: group | batch | none (Dr. GRPO)
    # A = (r - mean) / (std + eps). The sample (Bessel-corrected) std, as TRL and verl compute it; the
    # population std would scale advantages by sqrt(G / (G - 1)) (x1.41 at G = 2). eps 1e-6 as verl
    # (TRL adds 1e-4): it only matters for groups whose rewards barely vary.
    eps: float = 1e-6
    unbiased_std: bool = True
    baseline: str = "rloo"  # reinforce: none | mean | rloo | batch
    gamma: float = 1.0  # gae
    lam: float = 0.95  # gae
    whiten: bool = True  # gae: advantages whitened over the rollout batch (per process)


@dataclass
class LossConfig:
    eps_low: float = 0.2  # ratio clipped to [1 - eps_low, 1 + eps_high]
    eps_high: float = 0.2
    dual_clip: Optional[float] = None  # c > 1 bounds the loss of negative advantages by c * |A|
    kl_coef: float = 0.0  # beta; 0 loads no reference model
    kl_estimator: str = "k3"  # k1 | k2 | k3
    entropy_coef: float = 0.0
    aggregation: str = "token-mean"  # token-mean | seq-mean-token-mean | token-sum-norm
    norm_length: Optional[int] = None  # token-sum-norm: the constant length (default rollout.max_new_tokens)
    value_clip: Optional[float] = 0.2  # gae: critic value clipping around the rollout's values


@dataclass
class PolicyConfig:
    """How one policy samples and learns; ``RLConfig`` adds the run around it. A method that trains two
    policies (Tango) gives each its own section of this shape."""

    prompts_per_step: int = 8  # prompts per step, summed over processes
    inner_epochs: int = 1  # passes over each rollout batch (TRL's num_iterations, PPO epochs)
    mini_batches: int = 1  # optimiser steps per pass
    micro_batch_size: int = 8  # sequences per forward/backward and per log-prob pass on one device
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    advantage: AdvantageConfig = field(default_factory=AdvantageConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-6, scheduler="constant"))

    def check_policy(self, world_size: int = 1, prefix: str = "rl", group_size: Optional[int] = None) -> None:
        """``group_size``: the sequences a prompt becomes, where it is not ``rollout.group_size``."""
        choice(f"{prefix}.advantage.estimator", self.advantage.estimator, ESTIMATORS)
        choice(f"{prefix}.advantage.std", self.advantage.std, ["group", "batch", "none"])
        choice(f"{prefix}.advantage.baseline", self.advantage.baseline, ["none", "mean", "rloo", "batch"])
        choice(f"{prefix}.loss.aggregation", self.loss.aggregation, AGGREGATIONS)
        choice(f"{prefix}.loss.kl_estimator", self.loss.kl_estimator, ["k1", "k2", "k3"])
        for key in ("prompts_per_step", "inner_epochs", "mini_batches", "micro_batch_size"):
            if getattr(self, key) < 1:
                raise UserError(f"recipe key '{prefix}.{key}' must be >= 1; got {getattr(self, key)}")
        for key in ("group_size", "max_new_tokens", "batch_size"):
            if getattr(self.rollout, key) < 1:
                raise UserError(f"recipe key '{prefix}.rollout.{key}' must be >= 1; got {getattr(self.rollout, key)}")
        if self.rollout.temperature <= 0 or not 0 < self.rollout.top_p <= 1:
            raise UserError(f"recipe keys '{prefix}.rollout.temperature' must be > 0 and '{prefix}.rollout.top_p' "
                            f"in (0, 1]")
        if self.prompts_per_step % world_size:
            raise UserError(f"{prefix}.prompts_per_step={self.prompts_per_step} is not a multiple of the {world_size} "
                            f"processes")
        per_process = self.prompts_per_step // world_size * (group_size or self.rollout.group_size)
        if per_process % self.mini_batches:
            raise UserError(f"the {per_process} sequences of a step on one process do not split into "
                            f"{prefix}.mini_batches={self.mini_batches}")
        if self.advantage.estimator == "grpo" and self.rollout.group_size < 2:
            raise UserError(f"GRPO needs {prefix}.rollout.group_size >= 2 (a group of one has no spread)")
        if self.loss.dual_clip is not None and self.loss.dual_clip <= 1:
            raise UserError(f"recipe key '{prefix}.loss.dual_clip' must be > 1; got {self.loss.dual_clip}")
        self.optim.check()

    @property
    def norm_length(self) -> int:
        return self.loss.norm_length or self.rollout.max_new_tokens


@dataclass
class RLConfig(PolicyConfig):
    steps: int = 100  # RL steps: one rollout batch each
    reward_clip: Optional[float] = None  # clip the total reward to [-c, c]
    rewards: List[RewardSpec] = field(default_factory=list)
    critic_optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=5e-6, scheduler="constant"))
    mixed_precision: str = "no"  # no | fp16 | bf16
    eval_every: int = 0  # RL steps between evaluations; 0: only at the end
    save_every: int = 0  # RL steps between checkpoints
    keep_last: int = 2
    resume: str = "auto"  # auto | never | a checkpoint folder
    resume_allow_changes: List[str] = field(default_factory=list)  # as runner.resume_allow_changes
    log_samples: int = 4  # completions written to samples.jsonl each step

    def check(self, world_size: int = 1) -> None:
        # Reward names are checked where the rewards are registered: by the pipeline that builds the RLTask
        # (``rl.rewards.check_rewards``), not here, so that a schema imports no implementation.
        self.check_policy(world_size, "rl")
        choice("rl.mixed_precision", self.mixed_precision, ["no", "fp16", "bf16"])
        for key in ("steps", "keep_last"):
            if getattr(self, key) < 1:
                raise UserError(f"recipe key 'rl.{key}' must be >= 1; got {getattr(self, key)}")
        check_resume("rl.resume", self.resume)
        if self.advantage.estimator == "gae":
            self.critic_optim.check()
