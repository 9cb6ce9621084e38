"""The recipe schema of ``mmthink calibrate`` (Thermometer, arXiv 2403.08819)."""

from dataclasses import dataclass, field
from typing import List, Optional

from mmthink.config import choice
from mmthink.errors import UserError
from mmthink.methods.thermometer.fit import ThermometerConfig
from mmthink.models.config import ModelConfig
from mmthink.runner.config import LoggingConfig


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
