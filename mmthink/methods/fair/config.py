"""The recipe schema of ``mmthink fair`` (robust fair information bottleneck, arXiv 2302.08077)."""

from dataclasses import dataclass, field
from typing import List

from mmthink.config import choice
from mmthink.errors import UserError

ALGORITHMS, TASKS, RADII = ("gaussian", "robust", "bootstrap"), ("auto", "regression", "classification"), (
    "concentration", "bootstrap")
NOTIONS, MEASURES, MODELS = ("independence", "separation"), ("auto", "corr", "dp"), ("linear", "mlp")


@dataclass
class BootstrapConfig:
    model: str = "linear"  # linear (linear / logistic regression) | mlp (one tanh hidden layer)
    notion: str = "independence"  # independence (demographic parity) | separation (equalised odds)
    measure: str = "auto"  # auto: corr for a continuous or binary S (ε means what it means for the closed
    #                        form), dp for a discrete S with > 2 groups; dp on a binary S makes ε the gap itself
    replicates: int = 50  # B bootstrap replicates of the S-labelled rows
    quantile: float = 1.0  # q: the constrained upper quantile of the B violations (1.0 = worst replicate)
    hidden: int = 32  # mlp width
    steps: int = 300  # Adam steps per penalty round
    lr: float = 0.03
    weight_decay: float = 0.0
    lam0: float = 1.0  # first penalty weight; ×lam_growth each round
    lam_growth: float = 10.0
    max_rounds: int = 6  # penalty rounds after the unconstrained one
    margin: float = 0.9  # train against margin·budget, accept ≤ budget
    threads: int = 1  # torch threads while fitting: tiny full-batch steps stall (~50×) when threads are contended
    seed: int = 0

    def check(self) -> None:
        if self.model not in MODELS:
            raise UserError(f"bootstrap model must be one of {MODELS} (got '{self.model}')")
        if self.notion not in NOTIONS:
            raise UserError(f"fairness notion must be one of {NOTIONS} (got '{self.notion}')")
        if self.measure not in MEASURES:
            raise UserError(f"fairness measure must be one of {MEASURES} (got '{self.measure}')")
        if not 0 < self.quantile <= 1:
            raise UserError(f"bootstrap quantile must be in (0, 1] (got {self.quantile})")
        if self.replicates < 1 or self.steps < 1:
            raise UserError("bootstrap replicates and steps must be ≥ 1")


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
        choice("algorithm", self.algorithm, ALGORITHMS)
        choice("task", self.task, TASKS)
        choice("radius", self.radius, RADII)
        for a in self.curve_algorithms:
            choice("curve_algorithms", a, ALGORITHMS)
        if not 0 < self.delta < 1:
            raise UserError(f"recipe key 'delta' must be in (0, 1); got {self.delta}")
        self.bootstrap.seed = self.seed
        self.bootstrap.check()

    def fit_kwargs(self) -> dict:
        return dict(task=self.task, radius=self.radius, delta=self.delta, radius_replicates=self.radius_replicates,
                    bootstrap=self.bootstrap)
