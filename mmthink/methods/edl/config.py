"""The recipe schema of ``mmthink train edl`` (consistent evidential deep learning)."""

from dataclasses import dataclass, field

from mmthink.config import choice
from mmthink.errors import UserError
from mmthink.methods.edl.train import EDLConfig
from mmthink.runner.config import LoggingConfig


@dataclass
class EDLData:
    name: str = "digits"  # digits (scikit-learn's, train/test on 0-4, OOD 5-9) | synthetic (Gaussian blobs, no OOD)
    n: int = 600  # synthetic: training points (the test set has the same size, another seed)
    k: int = 3  # synthetic: classes
    d: int = 2  # synthetic: dimensions
    seed: int = 0


@dataclass
class EDLEval:
    n_bins: int = 10


@dataclass
class EDLRecipe:
    method: str = "edl"
    output_dir: str = "runs/edl"
    data: EDLData = field(default_factory=EDLData)
    edl: EDLConfig = field(default_factory=EDLConfig)
    eval: EDLEval = field(default_factory=EDLEval)
    logging: LoggingConfig = field(default_factory=LoggingConfig)

    def check(self, world_size: int = 1) -> None:
        if self.method != "edl":
            raise UserError(f"this recipe is for method '{self.method}', not 'edl'")
        choice("data.name", self.data.name, ["digits", "synthetic"])
        if self.data.n < 2 or self.data.k < 2 or self.data.d < 1:
            raise UserError("recipe keys 'data.n' and 'data.k' must be >= 2 and 'data.d' >= 1")
        self.edl.check()
        self.logging.check()
