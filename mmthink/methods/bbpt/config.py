"""The recipe schema of ``mmthink train bbpt`` (black-box prompt tuning, arXiv 2305.00593).

Defaults are the official code's (d = 500, L = 50, popsize 20, 300 CMA-ES iterations, σ₀ = 1, prior
N(0, 50 I), ELBO with 10 samples and KL weight 1e-3, 100 prompts sampled, 100 ABC particles).
"""
from dataclasses import dataclass, field
from typing import List, Optional

from mmthink.config import choice
from mmthink.errors import UserError
from mmthink.runner.config import LoggingConfig

ALGORITHMS = ["cma_ensemble", "cma_elbo", "abc_smc", "snpe", "prompt_tuning", "zero_shot"]
VOTING = ("abc_smc", "snpe")  # label-only searches: vote-histogram predictive


@dataclass
class BoxConfig:
    model: str = "smollm2-135m-instruct"  # preset, hub id or local path of the local black box
    endpoint: Optional[str] = None  # URL of a remote black box (mmthink.methods.bbpt.remote); replaces model
    level: str = "logits"  # logits | labels (what the black box answers)
    n_prompt_tokens: int = 50  # L
    template: Optional[str] = None  # with {text} and {mask}; null: the task's
    verbalizer: Optional[List[str]] = None  # one word per class; null: the task's
    placeholder: Optional[str] = None  # token the prompts are added to; null: unk / pad / eos
    batch_size: int = 32  # sequences per forward
    max_length: int = 256
    dtype: str = "float32"
    device: Optional[str] = None  # cpu | cuda | cuda:1 ...; null: cuda when available

    def check(self) -> None:
        choice("box.level", self.level, ["logits", "labels"])
        choice("box.dtype", self.dtype, ["float32", "bfloat16", "float16"])
        if self.n_prompt_tokens < 1 or self.batch_size < 1 or self.max_length < self.n_prompt_tokens + 8:
            raise UserError("recipe keys 'box.n_prompt_tokens', 'box.batch_size' must be >= 1 and "
                            "'box.max_length' >= n_prompt_tokens + 8")


@dataclass
class ProjectionConfig:
    d: int = 500  # intrinsic dimension of z
    seed: int = 0  # seeds A


@dataclass
class CMAConfig:
    members: int = 5  # independent CMA-ES runs of the ensemble
    popsize: int = 20
    iters: int = 300
    sigma0: float = 1.0
    eval_every: int = 20  # generations between dev checks of the running best prompt


@dataclass
class ELBOConfig:
    popsize: int = 20
    iters: int = 300
    sigma0: float = 1.0
    bound: float = 100.0  # box constraint on every mean / variance coordinate
    n_mc: int = 10  # samples of q per fitness evaluation
    kl_weight: float = 1e-3
    prior_var: float = 50.0
    n_samples: int = 100  # prompts drawn from the chosen q


@dataclass
class ABCConfig:
    n_particles: int = 100
    popsize: int = 20  # simulations per batch
    prior_var: float = 50.0
    kernel_scale: float = 10.0  # proposal variance = kernel_scale · normalised particle variance
    max_batches: int = 50  # batches a round may spend filling its population before the search stops
    max_rounds: int = 100


@dataclass
class SNPEConfig:
    rounds: int = 5
    n_sims: int = 1000  # simulations (prompts sent with the training set) per round
    n_samples: int = 100  # prompts drawn from the posterior
    prior_var: float = 50.0
    batch: int = 20  # prompts per black-box call
    hidden_features: int = 60  # masked autoregressive flow
    num_transforms: int = 10
    max_epochs: int = 200


@dataclass
class PromptTuningConfig:
    steps: int = 100  # full-access baseline: AdamW steps on the training set (peft prompt tuning)
    lr: float = 3e-2
    batch_size: int = 32


@dataclass
class EvalConfig:
    n_bins: int = 10
    limit: Optional[int] = None  # first N test rows (and OOD rows); null: all
    ood: Optional[str] = "auto"  # OOD task name/folder; auto: the task's own; null: none


@dataclass
class BBPTRecipe:
    method: str = "bbpt"
    output_dir: str = "runs/bbpt"
    task: str = "sst2"  # a shipped task (assets/textcls) or a folder in the same layout
    algorithm: str = "cma_ensemble"  # one of ALGORITHMS
    seed: int = 0
    # auto: a search killed mid-way resumes from output_dir/checkpoints/search (CMA-ES: after each
    # generation; ABC-SMC: after each round); never: start afresh. SNPE and prompt tuning restart.
    resume: str = "auto"
    resume_allow_changes: List[str] = field(default_factory=list)  # recipe keys that may differ when resuming
    box: BoxConfig = field(default_factory=BoxConfig)
    projection: ProjectionConfig = field(default_factory=ProjectionConfig)
    cma: CMAConfig = field(default_factory=CMAConfig)
    elbo: ELBOConfig = field(default_factory=ELBOConfig)
    abc: ABCConfig = field(default_factory=ABCConfig)
    snpe: SNPEConfig = field(default_factory=SNPEConfig)
    prompt_tuning: PromptTuningConfig = field(default_factory=PromptTuningConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)

    def check(self, world_size: int = 1) -> None:
        if self.method != "bbpt":
            raise UserError(f"this recipe is for method '{self.method}', not 'bbpt'")
        choice("algorithm", self.algorithm, ALGORITHMS)
        choice("resume", self.resume, ["auto", "never"])
        self.box.check()
        self.logging.check()
        if self.box.level == "labels" and self.algorithm in ("cma_ensemble", "cma_elbo", "prompt_tuning"):
            raise UserError(f"algorithm '{self.algorithm}' needs box.level=logits; with labels only use abc_smc or snpe")
        if self.algorithm == "prompt_tuning" and self.box.endpoint:
            raise UserError("prompt_tuning is the full-access baseline: it needs box.model, not box.endpoint")
        if self.projection.d < 2:
            raise UserError("recipe key 'projection.d' must be >= 2")
        for key, value in [("cma.members", self.cma.members), ("cma.popsize", self.cma.popsize),
                           ("cma.iters", self.cma.iters), ("elbo.popsize", self.elbo.popsize),
                           ("elbo.iters", self.elbo.iters), ("elbo.n_mc", self.elbo.n_mc),
                           ("elbo.n_samples", self.elbo.n_samples), ("abc.n_particles", self.abc.n_particles),
                           ("abc.popsize", self.abc.popsize), ("snpe.rounds", self.snpe.rounds),
                           ("snpe.n_sims", self.snpe.n_sims), ("snpe.n_samples", self.snpe.n_samples),
                           ("prompt_tuning.steps", self.prompt_tuning.steps)]:
            if value < 1:
                raise UserError(f"recipe key '{key}' must be >= 1; got {value}")
        if world_size > 1:
            raise UserError("bbpt runs in one process (the black box is queried, not trained); launch it without accelerate")
