"""The recipe schema of ``mmthink train sft``: chat-format supervised fine-tuning of a causal LM."""

from dataclasses import dataclass, field
from typing import Optional

from mmthink.errors import UserError
from mmthink.models.config import ModelConfig
from mmthink.runner.config import LoggingConfig, OptimConfig, RunnerConfig


@dataclass
class SFTData:
    train_file: str = ""  # required for training; JSONL or parquet rows: {"messages": [...]} or {"prompt", "completion"}
    eval_file: Optional[str] = None  # same format; evaluated every runner.eval_every steps and at the end
    max_length: int = 512  # tokens per example (per packed row with packing)
    packing: bool = False  # concatenate examples into rows of max_length (see mmthink.data.chat.pack)
    limit: Optional[int] = None  # use only the first N training rows


@dataclass
class SFTEval:
    max_new_tokens: int = 32  # generation budget for exact match
    batch_size: int = 16
    limit: Optional[int] = 200  # rows scored by exact match (the loss uses every eval row); null: all


@dataclass
class SFTRecipe:
    method: str = "sft"
    output_dir: str = "runs/sft"
    seed: int = 0
    model: ModelConfig = field(default_factory=ModelConfig)
    data: SFTData = field(default_factory=SFTData)
    eval: SFTEval = field(default_factory=SFTEval)
    optim: OptimConfig = field(default_factory=OptimConfig)
    runner: RunnerConfig = field(default_factory=RunnerConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)

    def check(self, world_size: int = 1) -> None:
        if self.method != "sft":
            raise UserError(f"this recipe is for method '{self.method}', not 'sft'")
        if not self.data.train_file:
            raise UserError("recipe key 'data.train_file' is required")
        if self.data.max_length < 2:
            raise UserError(f"recipe key 'data.max_length' must be >= 2; got {self.data.max_length}")
        self.model.check()
        self.model.check_output(self.output_dir)
        self.optim.check()
        self.runner.check(world_size)
        self.logging.check()
