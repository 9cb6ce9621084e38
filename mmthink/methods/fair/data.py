"""Tables for ``mmthink fair``: read a CSV/Parquet file, pick target / sensitive / feature columns, check them.

The sensitive column may be empty (NaN) on most rows: only the rows that carry it are used for the
fairness constraint, every row is used for the target. Non-numeric sensitive values ("F"/"M") become
category codes. Also: a synthetic jointly Gaussian table with known Σ_X, c_Y, c_S, and an offline
export of scikit-learn's diabetes table (sex and age as sensitive attributes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence

import numpy as np

from mmthink.errors import UserError

if TYPE_CHECKING:
    import pandas

MAX_LEVELS = 10  # a sensitive/target column with at most this many integer values is discrete


@dataclass
class FairData:
    """Numeric arrays from a table; ``s`` is NaN where the sensitive attribute is unknown."""

    x: np.ndarray  # (n, d) float
    y: np.ndarray  # (n,) float; 0/1 for a two-valued target
    s: np.ndarray  # (n,) float with NaN
    features: list
    target: str
    sensitive: str
    y_labels: Optional[list] = None  # original values behind 0/1 for a two-valued target
    s_labels: Optional[list] = None  # original values behind the codes of a non-numeric sensitive column

    @property
    def labelled(self) -> np.ndarray:
        return ~np.isnan(self.s)

    def subset(self, rows: np.ndarray) -> "FairData":
        return FairData(self.x[rows], self.y[rows], self.s[rows], self.features, self.target, self.sensitive,
                        self.y_labels, self.s_labels)


def check_eps(eps) -> float:
    try:
        value = float(eps)
    except (TypeError, ValueError):
        raise UserError(f"eps must be a number > 0 (got {eps!r})") from None
    if not (math.isfinite(value) and value > 0):
        raise UserError(f"eps must be > 0 (got {eps})")
    return value


def read_table(path) -> "pandas.DataFrame":
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise UserError(f"data file not found: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix in (".csv", ".tsv", ".txt"):
            return pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",")
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
    except (ValueError, OSError, ImportError) as e:
        raise UserError(f"cannot read {path}: {str(e).splitlines()[0]}") from None
    raise UserError(f"unsupported table format '{suffix}' for {path}: use .csv, .tsv or .parquet")


def is_discrete(values: np.ndarray, max_levels: int = MAX_LEVELS) -> bool:
    values = values[~np.isnan(values)]
    return bool(np.all(values == np.round(values))) and len(np.unique(values)) <= max_levels


def _names(cols) -> str:
    return ", ".join(f"'{c}'" for c in cols)


def select_columns(frame, target: str, sensitive: str, features: Optional[Sequence[str]] = None) -> FairData:
    """Check the columns and return numeric arrays; every problem is a one-line UserError."""
    import pandas as pd
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    if target == sensitive:
        raise UserError(f"target and sensitive are the same column '{target}'")
    wanted = [target, sensitive] + list(features or [])
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        raise UserError(f"column(s) not in the table: {_names(missing)} (columns: {_names(frame.columns)})")
    if features is None:
        features = [c for c in frame.columns if c not in (target, sensitive)
                    and (is_numeric_dtype(frame[c]) or is_bool_dtype(frame[c]))]
        if not features:
            raise UserError("no numeric feature columns besides the target and the sensitive column")
    features = list(features)
    overlap = [c for c in features if c in (target, sensitive)]
    if overlap:
        raise UserError(f"feature list contains the target/sensitive column(s): {_names(overlap)}")
    bad = [c for c in features if not (is_numeric_dtype(frame[c]) or is_bool_dtype(frame[c]))]
    if bad:
        raise UserError(f"non-numeric feature column(s): {_names(bad)}; encode them or leave them out of --features")
    x = frame[features].to_numpy(dtype=float)
    holes = [c for c, k in zip(features, np.isnan(x).sum(0)) if k]
    if holes:
        raise UserError(f"feature column(s) with missing values: {_names(holes)}; fill or drop those rows")
    flat = [c for c, sd in zip(features, x.std(0)) if sd == 0]
    if flat:
        raise UserError(f"constant feature column(s): {_names(flat)}; leave them out of --features")

    ycol = frame[target]
    if ycol.isna().any():
        raise UserError(f"target column '{target}' has {int(ycol.isna().sum())} missing values; drop those rows")
    y_labels = None
    levels = ycol.unique().tolist()
    try:
        levels = sorted(levels)
    except TypeError:
        levels = sorted(levels, key=str)
    if len(levels) == 2:  # a two-valued target is a classification target, coded 0/1
        y_labels = levels
        y = (ycol == levels[1]).to_numpy(dtype=float)
    elif is_numeric_dtype(ycol):
        y = ycol.to_numpy(dtype=float)
    else:
        raise UserError(f"target column '{target}' is neither numeric nor two-valued ({len(levels)} values)")
    if len(levels) < 2:
        raise UserError(f"target column '{target}' is constant")

    scol, s_labels = frame[sensitive], None
    if is_numeric_dtype(scol) or is_bool_dtype(scol):
        s = scol.to_numpy(dtype=float)
    else:
        cat = pd.Categorical(scol.where(scol.astype(str).str.strip() != "", None))
        s_labels = [str(c) for c in cat.categories]
        s = np.where(cat.codes < 0, np.nan, cat.codes).astype(float)
    known = ~np.isnan(s)
    if not known.any():
        raise UserError(f"sensitive column '{sensitive}' has no values: label S on some rows")
    if len(np.unique(s[known])) < 2:
        raise UserError(f"sensitive column '{sensitive}' is constant on its {int(known.sum())} labelled rows")
    return FairData(x, y, s, features, target, sensitive, y_labels, s_labels)


@dataclass
class GaussianTable:
    """A synthetic table and the population moments it was drawn from (latent, before any binarising)."""

    frame: "pandas.DataFrame"
    s_full: np.ndarray  # the sensitive column before hiding it (for held-out checks)
    sigma_x: np.ndarray
    c_y: np.ndarray
    c_s: np.ndarray
    var_y: float
    var_s: float


def gaussian_table(n: int, d: int, n_labelled: int, seed: int = 0, sample_seed: Optional[int] = None,
                   binary_target: bool = False, binary_sensitive: bool = False, alignment: float = 0.8,
                   noise: float = 0.5) -> GaussianTable:
    """Zero-mean (X, Y, S) with Y = βᵀX + e_Y, S = γᵀX + e_S, γ = alignment·β + …; S kept on n_labelled rows.

    ``seed`` fixes the population (Σ_X, β, γ); ``sample_seed`` (default: seed) the rows, so a fresh
    sample of the same population is ``gaussian_table(..., seed=s, sample_seed=other)``.
    """
    import pandas as pd

    pop = np.random.default_rng(seed)
    a = pop.normal(size=(d, d))
    sigma_x = a @ a.T / d + 0.5 * np.eye(d)
    beta = pop.normal(size=d) / math.sqrt(d)
    gamma = alignment * beta + math.sqrt(max(1 - alignment**2, 0.0)) * pop.normal(size=d) / math.sqrt(d)
    rng = np.random.default_rng(seed if sample_seed is None else sample_seed)
    x = rng.multivariate_normal(np.zeros(d), sigma_x, size=n)
    y = x @ beta + noise * rng.normal(size=n)
    s = x @ gamma + noise * rng.normal(size=n)
    if binary_target:
        y = (y > 0).astype(float)
    if binary_sensitive:
        s = (s > 0).astype(float)
    s_shown = s.copy()
    s_shown[n_labelled:] = np.nan
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(d)])
    frame["y"], frame["s"] = y, s_shown
    return GaussianTable(frame, s, sigma_x, sigma_x @ beta, sigma_x @ gamma,
                         float(beta @ sigma_x @ beta + noise**2), float(gamma @ sigma_x @ gamma + noise**2))


def export_diabetes(folder, n_labelled: Optional[int] = None, sensitive: str = "sex", seed: int = 0) -> Path:
    """Write scikit-learn's diabetes table (442 rows, offline) to ``folder/diabetes.csv``.

    Columns: age, sex (1/2), bmi, bp, s1…s6, target (disease progression). With ``n_labelled``, the
    ``sensitive`` column is blanked on all but ``n_labelled`` random rows.
    """
    from sklearn.datasets import load_diabetes

    from mmthink.io import write_text_atomic

    frame = load_diabetes(as_frame=True, scaled=False).frame
    if sensitive not in frame.columns:
        raise UserError(f"column '{sensitive}' is not in the diabetes table (columns: {_names(frame.columns)})")
    if n_labelled is not None:
        if not 0 < n_labelled <= len(frame):
            raise UserError(f"n_labelled must be in 1..{len(frame)} (got {n_labelled})")
        hide = np.random.default_rng(seed).permutation(len(frame))[n_labelled:]
        frame.loc[frame.index[hide], sensitive] = np.nan
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "diabetes.csv"
    write_text_atomic(path, frame.to_csv(index=False))
    return path
