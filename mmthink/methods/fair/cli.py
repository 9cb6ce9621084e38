"""``mmthink fair data | fit | curve``: the fairness method's own verbs (mounted by its registry row).

The flags of ``fit`` and ``curve`` are recipe keys under other names; they win over the recipe and
lose to explicit ``key=value`` overrides.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from mmthink.commands import RECIPE_OPTION, overrides as overrides_arg, command_line, method_recipe, print_table, split_list, \
    user_errors
from mmthink.errors import UserError

FAIR_OVERRIDES = overrides_arg("epsilon=0.05 bootstrap.steps=100")
app = typer.Typer(help="Fair predictors when the sensitive attribute is mostly unknown (robust IB).",
                  no_args_is_help=True, add_completion=False)

DATA = typer.Option(None, "--data", help="CSV or Parquet table (data.path)")
TARGET = typer.Option(None, "--target", help="target column (data.target)")
SENSITIVE = typer.Option(None, "--sensitive", help="sensitive column, may be mostly empty (data.sensitive)")
FEATURES = typer.Option(None, "--features", help="comma-separated feature columns (default: all other numeric)")
EPSILON = typer.Option(None, "--epsilon", help="fairness budget I(S;Ŷ) <= epsilon nats (epsilon)")
OUT = typer.Option(None, "--out", help="output folder (output_dir)")


def _recipe(recipe, overrides, data=None, target=None, sensitive=None, features=None, epsilon=None, algorithm=None,
            out=None):
    """The fair recipe with the command's flags applied as overrides."""
    flags = {"data.path": data, "data.target": target, "data.sensitive": sensitive, "epsilon": epsilon,
             "algorithm": algorithm, "output_dir": out}
    extra = [f"{k}={v}" for k, v in flags.items() if v is not None]
    if features is not None:
        extra.append(f"data.features=[{','.join(split_list(features, '--features'))}]")
    return method_recipe("fair", recipe, extra + list(overrides or []))


@app.command("fit")
@user_errors
def fit(
    data: Optional[str] = DATA, target: Optional[str] = TARGET, sensitive: Optional[str] = SENSITIVE,
    features: Optional[str] = FEATURES, epsilon: Optional[float] = EPSILON,
    algorithm: Optional[str] = typer.Option(None, "--method", help="gaussian | robust | bootstrap (algorithm)"),
    out: Optional[str] = OUT, recipe: Optional[str] = RECIPE_OPTION, overrides: Optional[List[str]] = FAIR_OVERRIDES,
):
    """Fit a fair predictor; report utility, violation on rows with known S, and the guarantee."""
    from mmthink.methods.fair.pipeline import fit_predictor

    cfg = _recipe(recipe, overrides, data, target, sensitive, features, epsilon, algorithm, out)
    summary = fit_predictor(cfg, command_line())
    print_table(f"fair fit ({cfg.algorithm}, eps={cfg.epsilon}) -> {cfg.output_dir}/predictor", summary)


@app.command("curve")
@user_errors
def curve(
    data: Optional[str] = DATA, target: Optional[str] = TARGET, sensitive: Optional[str] = SENSITIVE,
    features: Optional[str] = FEATURES, epsilon: Optional[float] = EPSILON, out: Optional[str] = OUT,
    recipe: Optional[str] = RECIPE_OPTION, overrides: Optional[List[str]] = FAIR_OVERRIDES,
):
    """Utility and violation against the number of S-labelled rows (JSON + PNG), per algorithm."""
    from mmthink.methods.fair.pipeline import value_of_labels

    cfg = _recipe(recipe, overrides, data, target, sensitive, features, epsilon, None, out)
    curves = value_of_labels(cfg, command_line())
    flat = {}
    for m, rows in curves["methods"].items():
        for n, u, v in zip(curves["n"], rows["utility"], rows["violation"]):
            flat[f"{m} n={n} utility / violation"] = f"{u:.4f} / {v:.4f}"
    print_table(f"fair curve -> {cfg.output_dir}/value_of_labels.png", flat)


@app.command("data")
@user_errors
def data(
    which: str = typer.Argument(..., help="diabetes (scikit-learn's bundled table) or synthetic (Gaussian)"),
    out: str = typer.Option("data/fair", "--out"),
    n_labelled: Optional[int] = typer.Option(None, "--n-labelled", help="rows that keep their sensitive value"),
    n: int = typer.Option(5000, "--n", help="synthetic: rows"),
    d: int = typer.Option(5, "--d", help="synthetic: features"),
    seed: int = typer.Option(0, "--seed"),
):
    """Write a table for `mmthink fair fit`: diabetes (sex column) or a synthetic Gaussian one."""
    from mmthink.methods.fair.data import export_diabetes, gaussian_table

    if n < 2 or d < 1 or (n_labelled is not None and not 0 <= n_labelled <= (n if which == "synthetic" else 10**9)):
        raise UserError(f"fair data: --n must be >= 2, --d >= 1 and --n-labelled in [0, n]; got n={n}, d={d}, "
                        f"n_labelled={n_labelled}")
    if which == "diabetes":
        path = export_diabetes(Path(out), n_labelled, "sex", seed)
    elif which == "synthetic":
        from mmthink.io import write_text_atomic

        table = gaussian_table(n, d, n_labelled if n_labelled is not None else n // 10, seed)
        path = Path(out) / "synthetic.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, table.frame.to_csv(index=False))
    else:
        raise UserError(f"fair data: expected diabetes or synthetic; got {which!r}")
    typer.echo(f"wrote {path}")
