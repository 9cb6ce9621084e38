"""The recipe schema of EvoScale (``mmthink eval evoscale``): the sampler, the evolution, the baselines."""

from dataclasses import dataclass, field
from typing import List, Optional

from mmthink.config import choice
from mmthink.errors import UserError
from mmthink.models.config import ModelConfig

SCORERS = ("tests", "none")  # the task's own graded score (tests / constraints), or none (self-evolve)
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
    scorer: str = "tests"  # tests | none (self-evolve: condition on the previous iteration's outputs)
    show_scores: bool = False  # print each conditioning output's score in the prompt
    max_chars: int = 1200  # of each conditioning output shown in the prompt


@dataclass
class EvalSettings:
    limit: Optional[int] = None  # problems evaluated (the first N)
    baselines: List[str] = field(default_factory=lambda: ["best_of_n", "greedy"])  # at the same budget N
    timeout_s: float = 10.0  # per program (code tasks)


@dataclass
class EvoScaleRecipe:
    method: str = "evoscale"
    output_dir: str = "runs/evoscale"
    seed: int = 0
    model: ModelConfig = field(default_factory=ModelConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    evo: EvoConfig = field(default_factory=EvoConfig)
    eval: EvalSettings = field(default_factory=EvalSettings)

    def check(self, world_size: int = 1) -> None:
        if self.method != "evoscale":
            raise UserError(f"this recipe is for method '{self.method}', not 'evoscale'")
        choice("evo.scorer", self.evo.scorer, list(SCORERS))
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
