"""The recipe schema of EvoScale (``mmthink eval evoscale``): the sampler, the evolution, the baselines."""

from dataclasses import dataclass, field
from typing import List, Optional

from mmthink.config import choice
from mmthink.errors import UserError
from mmthink.models.config import ModelConfig
from mmthink.rl.config import RLConfig
from mmthink.runner.config import LoggingConfig, OptimConfig, RunnerConfig

STAGES = ("sft", "mutation", "rl")  # classical SFT, mutation SFT, RL with the improvement reward
# selection by the task's own graded score (tests / constraints), a reward model, the model's own Yes/No
# judgment, or none (self-evolve); the report always gives the true graded score
SCORERS = ("tests", "reward_model", "self", "none")
BASELINES = ("best_of_n", "greedy")


@dataclass
class SamplerConfig:
    endpoint: Optional[str] = None  # an OpenAI-compatible base URL (mmthink serve, vLLM); null: decode locally
    api_key_env: str = "MMTHINK_API_KEY"  # environment variable holding the endpoint's key
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 64
    batch_rows: int = 32  # rows decoded together (local sampling)
    chat: bool = True  # wrap prompts in the model's chat template


@dataclass
class EvoConfig:
    k: int = 5  # conditioning set: the top-K outputs of the previous iteration (paper: about 5)
    m: int = 10  # samples per iteration (paper: about 10)
    t: int = 5  # iterations; the budget is N = M x T samples
    scorer: str = "tests"  # tests | reward_model | self | none (self-evolve: random K of the last iteration)
    reward_model: Optional[str] = None  # scorer reward_model: a sequence-classification model (path or hub id)
    judge_question: Optional[str] = None  # scorer self: asked after the answer; null: "Is this answer correct? ..."
    show_scores: bool = False  # print each conditioning output's score in the prompt
    max_chars: int = 1200  # of each conditioning output shown in the prompt


@dataclass
class EvalSettings:
    limit: Optional[int] = None  # problems evaluated (the first N)
    baselines: List[str] = field(default_factory=lambda: ["best_of_n", "greedy"])  # at the same budget N
    timeout_s: float = 10.0  # per program (code tasks)


@dataclass
class TrainData:
    train_file: str = ""  # rows with prompt + completion (mmthink data digits) or HumanEval-style rows
    limit: Optional[int] = None


@dataclass
class SFTStage:
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-5))
    runner: RunnerConfig = field(default_factory=RunnerConfig)
    max_length: int = 512


@dataclass
class MutationStage(SFTStage):
    # The conditioning set E of each training problem: K outputs sampled from the classical-SFT model.
    problems: Optional[int] = None  # training problems turned into (x, E) -> better rows; null: all
    temperature: float = 1.0
    max_new_tokens: int = 64


@dataclass
class Shaping:
    baseline: str = "max"  # R(x, y') of the conditioning set: max | mean
    format_penalty: float = 0.5  # lambda: R(x, y) - R(x, y') - lambda F(y), F = 1 for a malformed answer


@dataclass
class EvoScaleRecipe:
    method: str = "evoscale"
    output_dir: str = "runs/evoscale"
    seed: int = 0
    stages: List[str] = field(default_factory=lambda: ["sft", "mutation", "rl"])  # train evoscale
    model: ModelConfig = field(default_factory=ModelConfig)
    data: TrainData = field(default_factory=TrainData)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    evo: EvoConfig = field(default_factory=EvoConfig)
    eval: EvalSettings = field(default_factory=EvalSettings)
    sft: SFTStage = field(default_factory=SFTStage)
    mutation: MutationStage = field(default_factory=MutationStage)
    rl: RLConfig = field(default_factory=RLConfig)
    shaping: Shaping = field(default_factory=Shaping)
    logging: LoggingConfig = field(default_factory=LoggingConfig)

    def check(self, world_size: int = 1) -> None:
        if self.method != "evoscale":
            raise UserError(f"this recipe is for method '{self.method}', not 'evoscale'")
        choice("evo.scorer", self.evo.scorer, list(SCORERS))
        if self.evo.scorer == "reward_model" and not self.evo.reward_model:
            raise UserError("recipe key 'evo.reward_model' is required with evo.scorer=reward_model "
                            "(a sequence-classification model: path or hub id)")
        if self.evo.scorer == "self" and self.sampler.endpoint:
            raise UserError("recipe key 'evo.scorer': 'self' reads the model's Yes/No logits and needs local "
                            "decoding; with sampler.endpoint use tests, reward_model or none")
        for key in ("k", "m", "t", "max_chars"):
            if getattr(self.evo, key) < 1:
                raise UserError(f"recipe key 'evo.{key}' must be >= 1; got {getattr(self.evo, key)}")
        if self.evo.k > self.evo.m:
            raise UserError(f"recipe key 'evo.k' ({self.evo.k}) must not exceed evo.m ({self.evo.m})")
        if not 0.0 <= self.sampler.temperature <= 2.0:
            raise UserError(f"recipe key 'sampler.temperature' must be in [0, 2]; got {self.sampler.temperature}")
        if not 0.0 < self.sampler.top_p <= 1.0:
            raise UserError(f"recipe key 'sampler.top_p' must be in (0, 1]; got {self.sampler.top_p}")
        for key in ("max_new_tokens", "batch_rows"):
            if getattr(self.sampler, key) < 1:
                raise UserError(f"recipe key 'sampler.{key}' must be >= 1; got {getattr(self.sampler, key)}")
        for b in self.eval.baselines:
            choice("eval.baselines", b, list(BASELINES))
        if self.eval.timeout_s <= 0:
            raise UserError(f"recipe key 'eval.timeout_s' must be > 0; got {self.eval.timeout_s}")
        self.model.check()

    def check_training(self, world_size: int = 1) -> None:
        self.check(world_size)
        if not self.stages or any(s not in STAGES for s in self.stages) or len(set(self.stages)) != len(self.stages):
            raise UserError(f"recipe key 'stages' must list distinct stages of {', '.join(STAGES)} in order; "
                            f"got {self.stages}")
        if self.stages != [s for s in STAGES if s in self.stages]:
            raise UserError(f"recipe key 'stages' must keep the order {', '.join(STAGES)}; got {self.stages}")
        if not self.data.train_file:
            raise UserError("recipe key 'data.train_file' is required")
        choice("shaping.baseline", self.shaping.baseline, ["max", "mean"])
        if self.shaping.format_penalty < 0:
            raise UserError(f"recipe key 'shaping.format_penalty' must be >= 0; got {self.shaping.format_penalty}")
        for name in ("sft", "mutation"):
            stage = getattr(self, name)
            stage.optim.check()
            stage.runner.check(world_size)
            if stage.max_length < 2:
                raise UserError(f"recipe key '{name}.max_length' must be >= 2; got {stage.max_length}")
        if not 0.0 < self.mutation.temperature <= 2.0:
            raise UserError(f"recipe key 'mutation.temperature' must be in (0, 2]; got {self.mutation.temperature}")
        self.rl.check(world_size)
        self.logging.check()
        self.model.check_output(self.output_dir)
