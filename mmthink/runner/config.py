"""Recipe sections every method shares: optimiser, runner and logging settings (plain dataclasses)."""

from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

from mmthink.config import choice
from mmthink.errors import UserError

STATE_FILE = "trainer_state.json"  # the step and data position inside every checkpoint folder


def check_resume(key: str, resume: str) -> None:
    """``auto``, ``never``, or a complete checkpoint folder."""
    if resume not in ("auto", "never") and not (Path(resume) / STATE_FILE).is_file():
        raise UserError(f"{key}={resume}: not a checkpoint folder (no {STATE_FILE})")


@dataclass
class OptimConfig:
    lr: float = 1e-4
    weight_decay: float = 0.0
    betas: List[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    max_grad_norm: float = 1.0  # 0 turns clipping off
    scheduler: str = "cosine"  # constant | linear | cosine, each after a linear warmup
    warmup_steps: int = 0  # wins over warmup_ratio when > 0
    warmup_ratio: float = 0.0
    min_lr_ratio: float = 0.0  # a decay ends at min_lr_ratio x lr (Satori's official RL: 0.1)

    def check(self) -> None:
        choice("optim.scheduler", self.scheduler, ["constant", "linear", "cosine"])
        if self.lr <= 0:
            raise UserError(f"recipe key 'optim.lr' must be > 0; got {self.lr}")
        if len(self.betas) != 2:
            raise UserError("recipe key 'optim.betas' must hold two numbers")


@dataclass
class RunnerConfig:
    max_steps: int = 100  # optimiser steps
    epochs: Optional[int] = None  # when set, max_steps = epochs x steps per epoch
    batch_size: int = 8  # examples per optimiser step, summed over processes and accumulation
    micro_batch_size: int = 8  # examples per forward on one device
    mixed_precision: str = "no"  # no | fp16 | bf16
    eval_every: int = 0  # optimiser steps between evaluations; 0: only at the end
    save_every: int = 0  # optimiser steps between checkpoints; 0: only the final model
    keep_last: int = 2  # checkpoints kept on disk
    resume: str = "auto"  # auto (latest checkpoint in output_dir) | never | a checkpoint dir
    # Recipe keys (fnmatch patterns) that may differ from the checkpoint's run when resuming, e.g. [optim.lr];
    # any other change to what shapes the trajectory is refused.
    resume_allow_changes: List[str] = field(default_factory=list)
    log_every: int = 1
    num_workers: int = 0

    def check(self, world_size: int = 1) -> None:
        choice("runner.mixed_precision", self.mixed_precision, ["no", "fp16", "bf16"])
        for key in ("batch_size", "micro_batch_size", "keep_last", "log_every"):
            if getattr(self, key) < 1:
                raise UserError(f"recipe key 'runner.{key}' must be >= 1; got {getattr(self, key)}")
        if self.max_steps < 1 and not self.epochs:
            raise UserError("recipe key 'runner.max_steps' must be >= 1 (or set runner.epochs)")
        check_resume("runner.resume", self.resume)
        per_step = self.micro_batch_size * world_size
        if self.batch_size % per_step:
            raise UserError(
                f"runner.batch_size={self.batch_size} is not a multiple of runner.micro_batch_size x processes"
                f" = {self.micro_batch_size} x {world_size}"
            )

    def grad_accum(self, world_size: int) -> int:
        return self.batch_size // (self.micro_batch_size * world_size)


@dataclass
class LoggingConfig:
    tensorboard: bool = False  # also write TensorBoard events under output_dir/tensorboard
    progress: str = "auto"  # auto (rich bar on a terminal, plain lines otherwise) | rich | plain | none
    plain_every_s: float = 30.0  # seconds between plain progress lines
    samples: int = 3  # generated examples written at each evaluation

    def check(self) -> None:
        choice("logging.progress", self.progress, ["auto", "rich", "plain", "none"])
