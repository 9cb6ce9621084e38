"""The recipe schema of ``mmthink calibrate`` (Thermometer, arXiv 2403.08819)."""

from dataclasses import dataclass, field
from typing import List, Optional

from mmthink.config import choice
from mmthink.errors import UserError
from mmthink.models.config import ModelConfig
from mmthink.runner.config import LoggingConfig

# The Gamma prior on the task temperature: shape k, scale theta (mode (k - 1) * theta = 1), as the authors' code.
GAMMA_SHAPE, GAMMA_SCALE = 1.25, 4.0


@dataclass
class ThermometerConfig:
    hidden: int = 256  # h of each branch; the paper: 256 for FLAN-T5-XL (d = 2048), 512 for LLaMA-2-7B
    steps: int = 5000  # optimiser steps, one task and one minibatch each
    batch_size: int = 128  # labelled rows per minibatch (a task with fewer gives all of them)
    lr: float = 1e-3  # AdamW
    weight_decay: float = 1e-4
    lam: float = 1e-2  # weight of the Gamma prior on the task temperature
    gamma_shape: float = GAMMA_SHAPE  # k; the prior's mode (k - 1) * theta = 1
    gamma_scale: float = GAMMA_SCALE  # theta
    val_every: int = 50  # steps between validations (best mean val NLL is kept)
    val_fraction: float = 0.1  # share of each task's labelled rows held out for validation
    seed: int = 0  # initial weights, task/minibatch sampling and the train/val splits

    def check(self) -> None:
        for key in ("hidden", "steps", "batch_size", "val_every"):
            if getattr(self, key) < 1:
                raise UserError(f"recipe key 'thermometer.{key}' must be >= 1; got {getattr(self, key)}")
        if self.lr <= 0:
            raise UserError(f"recipe key 'thermometer.lr' must be > 0; got {self.lr}")
        if self.lam < 0:
            raise UserError(f"recipe key 'thermometer.lam' must be >= 0; got {self.lam}")
        if self.gamma_shape <= 0 or self.gamma_scale <= 0:
            raise UserError("recipe keys 'thermometer.gamma_shape' and 'thermometer.gamma_scale' must be > 0")
        if not 0 <= self.val_fraction < 1:
            raise UserError(f"recipe key 'thermometer.val_fraction' must be in [0, 1); got {self.val_fraction}")


@dataclass
class CalibrationData:
    tasks_dir: str = ""  # folder of task JSONL files (one task a file); empty: the tasks shipped in assets/mcq
    tasks: List[str] = field(default_factory=list)  # file stems to use; empty: every file of the folder
    limit: Optional[int] = None  # questions per task
    freeform: bool = True  # also the free-form QA tasks of <tasks_dir>/freeform (as Yes/No questions)


@dataclass
class FeatureSettings:
    dir: str = ""  # where per-task features go; empty: <output_dir>/features
    batch_size: int = 16
    chat: bool = True  # wrap the question in the model's chat template
    # letters: next-token logits of the option letters (the paper; large LMs); cloze: log-likelihood of each
    # option's text after "Answer:" (small LMs, which answer every question with the same letter)
    scoring: str = "letters"
    chunk_size: int = 256  # rows per resumable part file


@dataclass
class CalibrationEval:
    loto: bool = True  # leave-one-task-out table: vanilla, TS-CV, Thermometer, oracle TS
    n_bins: int = 10
    diagrams: bool = True  # reliability diagrams (PNG) per held-out task


@dataclass
class ThermometerRecipe:
    method: str = "thermometer"
    output_dir: str = "runs/thermometer"
    model: ModelConfig = field(default_factory=lambda: ModelConfig(name="meta-llama/Llama-2-7b-chat-hf"))
    data: CalibrationData = field(default_factory=CalibrationData)
    features: FeatureSettings = field(default_factory=FeatureSettings)
    thermometer: ThermometerConfig = field(default_factory=ThermometerConfig)
    eval: CalibrationEval = field(default_factory=CalibrationEval)
    device: str = "cpu"  # where the calibrator trains (it is tiny)
    logging: LoggingConfig = field(default_factory=LoggingConfig)

    def check(self, world_size: int = 1) -> None:
        if self.method != "thermometer":
            raise UserError(f"this recipe is for method '{self.method}', not 'thermometer'")
        if self.features.batch_size < 1 or self.features.chunk_size < 1:
            raise UserError("recipe keys 'features.batch_size' and 'features.chunk_size' must be >= 1")
        choice("features.scoring", self.features.scoring, ["letters", "cloze"])
        if self.eval.n_bins < 1:
            raise UserError(f"recipe key 'eval.n_bins' must be >= 1; got {self.eval.n_bins}")
        self.model.check()
        self.thermometer.check()
        self.logging.check()
