"""The recipe schema of ``mmthink fair`` (robust fair information bottleneck, arXiv 2302.08077)."""

from dataclasses import dataclass, field
from typing import List

from mmthink.config import choice
from mmthink.errors import UserError
from mmthink.methods.fair.bootstrap import BootstrapConfig
from mmthink.methods.fair.fit import METHODS, RADII, TASKS


@dataclass
class FairTable:
    path: str = ""  # CSV or Parquet
    target: str = ""
    sensitive: str = ""  # may be empty (NaN) on most rows
    features: List[str] = field(default_factory=list)  # empty: every other numeric column


@dataclass
class FairRecipe:
    method: str = "fair"
    output_dir: str = "runs/fair"
    seed: int = 0
    data: FairTable = field(default_factory=FairTable)
    epsilon: float = 0.1  # budget: I(S; Ŷ) <= epsilon nats under the Gaussian model (|rho| <= sqrt(1 - e^{-2 eps}))
    algorithm: str = "robust"  # gaussian (nominal closed form) | robust (closed form at t - r) | bootstrap (generic)
    task: str = "auto"  # auto | regression | classification
    radius: str = "bootstrap"  # robust: r from a bootstrap quantile | a concentration bound (loose)
    delta: float = 0.05  # robust: the guarantee holds with probability 1 - delta
    radius_replicates: int = 200
    bootstrap: BootstrapConfig = field(default_factory=BootstrapConfig)  # the generic algorithm's settings
    holdout: float = 0.2  # share of rows kept out of fitting and scored
    curve_ns: List[int] = field(default_factory=lambda: [20, 40, 80, 150])  # fair curve: S-labelled rows kept
    curve_algorithms: List[str] = field(default_factory=lambda: ["gaussian", "robust", "bootstrap"])
    progress: str = "auto"

    def check(self, world_size: int = 1) -> None:
        if self.method != "fair":
            raise UserError(f"this recipe is for method '{self.method}', not 'fair'")
        for key in ("path", "target", "sensitive"):
            if not getattr(self.data, key):
                raise UserError(f"recipe key 'data.{key}' is required (or --{'data' if key == 'path' else key})")
        choice("algorithm", self.algorithm, METHODS)
        choice("task", self.task, TASKS)
        choice("radius", self.radius, RADII)
        for a in self.curve_algorithms:
            choice("curve_algorithms", a, METHODS)
        if not 0 < self.delta < 1:
            raise UserError(f"recipe key 'delta' must be in (0, 1); got {self.delta}")
        self.bootstrap.seed = self.seed
        self.bootstrap.check()

    def fit_kwargs(self) -> dict:
        return dict(task=self.task, radius=self.radius, delta=self.delta, radius_replicates=self.radius_replicates,
                    bootstrap=self.bootstrap)
