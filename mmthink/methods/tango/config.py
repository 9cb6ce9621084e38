"""The recipe schema of Tango (``mmthink train tango`` / ``eval tango``): a generator and a generative
step-level verifier, each a policy of its own (``generator``, ``verifier``: rollouts, GRPO, optimiser),
and the schedule that interleaves them."""

from dataclasses import dataclass, field
from typing import List, Optional

from mmthink.config import choice
from mmthink.errors import UserError
from mmthink.models.config import ModelConfig
from mmthink.rl.config import PolicyConfig, RolloutConfig
from mmthink.runner.config import LoggingConfig, OptimConfig, RunnerConfig, check_resume

# format tuning of the generator; (ours, opt-in) the verifier's output format from judgments whose verdicts
# are coin flips, so it learns the structure and nothing about which steps are wrong; the co-training
STAGES = ("format", "verifier_format", "rl")
ALPHA_SCHEDULES = ("exp", "linear", "cosine")


def _policy(max_new_tokens: int) -> PolicyConfig:
    # The official script's GRPO for both: n = 5, clip 0.2, k3 KL 0.001, entropy 0.001, lr 1e-6, T = 1.0.
    p = PolicyConfig(prompts_per_step=4, micro_batch_size=4, optim=OptimConfig(lr=1e-6, scheduler="constant"),
                     rollout=RolloutConfig(group_size=5, max_new_tokens=max_new_tokens, temperature=1.0))
    p.loss.kl_coef, p.loss.kl_estimator, p.loss.entropy_coef = 0.001, "k3", 0.001
    return p


@dataclass
class TangoData:
    train_file: str = ""  # math rows (ours: with steps and step_values); empty: generated into output_dir/data
    eval_file: Optional[str] = None
    n_train: int = 2000  # generated problems (with an empty train_file)
    n_eval: int = 100
    kinds: List[str] = field(default_factory=lambda: ["chain", "linear", "word"])
    levels: List[int] = field(default_factory=lambda: [1, 2, 3])
    limit: Optional[int] = None


@dataclass
class FormatStage:
    """The generator's format tuning: problems → solutions in the ``<step>`` format."""

    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-5))
    runner: RunnerConfig = field(default_factory=lambda: RunnerConfig(epochs=1, batch_size=16, micro_batch_size=4))
    max_length: int = 512


@dataclass
class VerifierFormatStage(FormatStage):
    """Not in the paper (its 7B verifier follows the format from the prompt; a 135M one writes none): SFT of
    the verifier on judgments of training solutions with random verdicts, so the outcome reward has
    something to act on while no step or outcome label is taught."""

    max_length: int = 768


@dataclass
class Schedule:
    steps: int = 440  # in all, warm-ups included
    generator_warmup: int = 0  # generator steps first, rewarded by the truth alone
    verifier_warmup: int = 40  # then verifier steps alone
    generator_steps: int = 3  # then this many generator steps ...
    verifier_steps: int = 1  # ... to this many verifier steps, starting with the generator
    verifier: bool = True  # false: outcome-only GRPO (the baseline: no verifier is loaded or trained)


@dataclass
class GeneratorReward:
    # outcome = w_gt 1[correct] + (1 − w_gt) 1[the verifier says correct] (where it gave a final verdict)
    #           + w_fmt format score
    gt_weight: float = 1.0
    format_weight: float = 0.0
    verifier_rollouts: int = 1  # judgments per solution on a generator step; process rewards averaged over them


@dataclass
class AlphaConfig:
    # A = (1 − α) A_out + α A_proc, α decaying over the generator's steps
    schedule: str = "exp"  # exp | linear | cosine
    start: float = 0.1
    end: float = 1e-3
    target_frac: float = 1.0  # exp: α reaches ``end`` after this share of the generator's steps


@dataclass
class VerifierReward:
    correctness_weight: float = 1.0  # × 1[final verdict == truth]
    format_weight: float = 0.8  # × the format score
    reweight: bool = True  # class-balancing weights on the policy loss
    decay: float = 0.8  # of the running class counts
    method: str = "sqrt_inverse"  # sqrt_inverse | inverse


@dataclass
class TangoRun:
    mixed_precision: str = "no"  # no | fp16 | bf16
    save_every: int = 0  # co-training steps between checkpoints
    keep_last: int = 2
    resume: str = "auto"  # auto | never | a checkpoint folder
    resume_allow_changes: List[str] = field(default_factory=list)
    eval_every: int = 0  # co-training steps between evaluations (and one before the first); 0: only at the end
    log_samples: int = 2  # generator and verifier outputs written to samples.jsonl each step


@dataclass
class TangoEval:
    limit: Optional[int] = 50  # held-out problems (generator accuracy, greedy)
    step_rows: int = 50  # rows of the step-labelled set (verifier F1, greedy)
    max_new_tokens: Optional[int] = None  # null: each policy's rollout.max_new_tokens
    batch_size: int = 16
    verifier: Optional[str] = None  # eval tango: the verifier to score; null: the run's verifier/model
    verifier_only: bool = False  # eval tango: --data holds solutions (question, solution[, label, correct])


@dataclass
class TangoRecipe:
    method: str = "tango"
    output_dir: str = "runs/tango"
    seed: int = 0
    stages: List[str] = field(default_factory=lambda: ["format", "rl"])
    chat: bool = True  # wrap prompts in each model's chat template (where it has one)
    model: ModelConfig = field(default_factory=ModelConfig)  # the generator
    verifier_model: ModelConfig = field(default_factory=ModelConfig)  # the verifier's starting point (a base model)
    data: TangoData = field(default_factory=TangoData)
    format: FormatStage = field(default_factory=FormatStage)
    verifier_format: VerifierFormatStage = field(default_factory=VerifierFormatStage)
    schedule: Schedule = field(default_factory=Schedule)
    generator: PolicyConfig = field(default_factory=lambda: _policy(256))
    verifier: PolicyConfig = field(default_factory=lambda: _policy(256))
    generator_reward: GeneratorReward = field(default_factory=GeneratorReward)
    alpha: AlphaConfig = field(default_factory=AlphaConfig)
    verifier_reward: VerifierReward = field(default_factory=VerifierReward)
    run: TangoRun = field(default_factory=TangoRun)
    eval: TangoEval = field(default_factory=TangoEval)
    logging: LoggingConfig = field(default_factory=LoggingConfig)

    def check_eval(self) -> None:
        if self.method != "tango":
            raise UserError(f"this recipe is for method '{self.method}', not 'tango'")
        self.model.check("model")
        self.verifier_model.check("verifier_model")
        for key in ("step_rows", "batch_size"):
            if getattr(self.eval, key) < 1:
                raise UserError(f"recipe key 'eval.{key}' must be >= 1; got {getattr(self.eval, key)}")

    def check(self, world_size: int = 1) -> None:
        self.check_eval()
        if not self.stages or any(s not in STAGES for s in self.stages) or self.stages != [s for s in STAGES
                                                                                           if s in self.stages]:
            raise UserError(f"recipe key 'stages' must list stages of {', '.join(STAGES)} in that order; "
                            f"got {self.stages}")
        s = self.schedule
        for key in ("generator_warmup", "verifier_warmup", "generator_steps", "verifier_steps"):
            if getattr(s, key) < 0:
                raise UserError(f"recipe key 'schedule.{key}' must be >= 0; got {getattr(s, key)}")
        if s.steps < 1:
            raise UserError(f"recipe key 'schedule.steps' must be >= 1; got {s.steps}")
        if s.verifier and s.steps <= s.generator_warmup + s.verifier_warmup:
            raise UserError(f"recipe key 'schedule.steps' ({s.steps}) must exceed the warm-ups "
                            f"({s.generator_warmup} + {s.verifier_warmup})")
        if s.verifier and s.generator_steps + s.verifier_steps == 0:
            raise UserError("recipe keys 'schedule.generator_steps' and 'schedule.verifier_steps' are both 0")
        self.generator.check_policy(world_size, "generator")
        # a verifier step judges one solution per prompt, rollout.group_size times
        self.verifier.check_policy(world_size, "verifier")
        g = self.generator_reward
        if not 0.0 <= g.gt_weight <= 1.0:
            raise UserError(f"recipe key 'generator_reward.gt_weight' must be in [0, 1]; got {g.gt_weight}")
        if g.verifier_rollouts < 1:
            raise UserError(f"recipe key 'generator_reward.verifier_rollouts' must be >= 1; got {g.verifier_rollouts}")
        a = self.alpha
        choice("alpha.schedule", a.schedule, list(ALPHA_SCHEDULES))
        if not 0.0 < a.end <= a.start <= 1.0:
            raise UserError(f"recipe keys 'alpha.start' and 'alpha.end' need 0 < end <= start <= 1; got "
                            f"{a.start}, {a.end}")
        if not 0.0 < a.target_frac <= 1.0:
            raise UserError(f"recipe key 'alpha.target_frac' must be in (0, 1]; got {a.target_frac}")
        v = self.verifier_reward
        choice("verifier_reward.method", v.method, ["sqrt_inverse", "inverse"])
        if not 0.0 <= v.decay < 1.0:
            raise UserError(f"recipe key 'verifier_reward.decay' must be in [0, 1); got {v.decay}")
        r = self.run
        choice("run.mixed_precision", r.mixed_precision, ["no", "fp16", "bf16"])
        if r.keep_last < 1:
            raise UserError(f"recipe key 'run.keep_last' must be >= 1; got {r.keep_last}")
        check_resume("run.resume", r.resume)
        for stage in ("format", "verifier_format"):
            if stage in self.stages:
                getattr(self, stage).optim.check()
                getattr(self, stage).runner.check(world_size)
        if "verifier_format" in self.stages and (not self.schedule.verifier or "rl" not in self.stages):
            raise UserError("recipe key 'stages' lists verifier_format, which runs at the start of the rl stage "
                            "and needs schedule.verifier: true")
        self.model.check_output(self.output_dir)
        self.logging.check()
