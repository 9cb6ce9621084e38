"""The ``mmthink`` command line: a thin Typer layer over the methods.

Heavy libraries (torch, transformers) are imported inside the commands, so that ``mmthink --help``
stays fast. A ``UserError`` anywhere below prints one line on stderr and exits with code 2.
"""

from __future__ import annotations

import functools
import shutil
import sys
from pathlib import Path
from typing import List, Optional

import typer

from mmthink.errors import EXIT_USER_ERROR, UserError
from mmthink.registry import COMMANDS_NOT_BUILT

app = typer.Typer(
    help="Train, evaluate, calibrate and serve reasoning and uncertainty methods for (multimodal) LMs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
recipes_app = typer.Typer(help="List, show and copy the shipped recipes.", no_args_is_help=True)
app.add_typer(recipes_app, name="recipes")
data_app = typer.Typer(help="Generate task data procedurally.", no_args_is_help=True)
app.add_typer(data_app, name="data")
calibrate_app = typer.Typer(help="Thermometer: calibrate an LM across tasks, apply it to new ones.",
                            no_args_is_help=True)
app.add_typer(calibrate_app, name="calibrate")
fair_app = typer.Typer(help="Fair predictors when the sensitive attribute is mostly unknown (robust IB).",
                       no_args_is_help=True)
app.add_typer(fair_app, name="fair")

OVERRIDES = typer.Argument(None, help="Recipe overrides, e.g. optim.lr=1e-5 runner.max_steps=10", show_default=False)


def fail(message: str) -> None:
    typer.echo(f"mmthink: error: {message}", err=True)
    raise typer.Exit(EXIT_USER_ERROR)


def user_errors(fn):
    """Turn a ``UserError`` into one line on stderr and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as e:
            fail(str(e))
        except KeyboardInterrupt:
            typer.echo("mmthink: interrupted", err=True)
            raise typer.Exit(130)

    return wrapper


def _recipe_path(recipe: str) -> Path:
    from mmthink.paths import recipes_dir

    path = Path(recipe)
    if path.is_file():
        return path
    shipped = recipes_dir() / (recipe if recipe.endswith(".yaml") else f"{recipe}.yaml")
    if shipped.is_file():
        return shipped
    raise UserError(f"recipe file not found: {recipe}")


def _load_cfg(method: str, action: str, recipe: Optional[str], overrides: List[str]):
    from mmthink import registry
    from mmthink.config import build, load_recipe, parse_overrides

    schema, entry = registry.method(method, action)
    if recipe is not None:
        cfg = load_recipe(_recipe_path(recipe), overrides or [], schema)
    else:
        cfg = build(schema, parse_overrides(overrides or [], schema))
    if getattr(cfg, "method", method) != method:
        raise UserError(f"recipe {recipe} is for method '{cfg.method}', not '{method}'")
    return cfg, entry


def _load_schema(method: str, recipe: Optional[str], overrides: List[str]):
    """A recipe for a method driven by its own command (``calibrate``, ``fair``)."""
    from mmthink.config import build, load_recipe, parse_overrides
    from mmthink.registry import schema as method_schema

    schema = method_schema(method)
    cfg = load_recipe(_recipe_path(recipe), overrides or [], schema) if recipe else \
        build(schema, parse_overrides(overrides or [], schema))
    if getattr(cfg, "method", method) != method:
        raise UserError(f"recipe {recipe} is for method '{cfg.method}', not '{method}'")
    return cfg


def _quiet_hub_bars() -> None:
    import os

    if not sys.stderr.isatty():
        # Per-file download/shard bars make unreadable SLURM logs; our own progress lines remain.
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


@app.command()
@user_errors
def train(
    method: str = typer.Argument(..., help="Method to train: sft, mirage, satori, ..."),
    recipe: str = typer.Option(..., "--recipe", "-r", help="Recipe YAML (a path, or a shipped name like tiny/sft)"),
    overrides: Optional[List[str]] = OVERRIDES,
    print_config: bool = typer.Option(False, "--print-config", help="Print the resolved recipe and exit"),
):
    """Train METHOD with a recipe, e.g. mmthink train sft --recipe recipes/tiny/sft.yaml optim.lr=1e-4"""
    from mmthink.config import to_yaml

    cfg, entry = _load_cfg(method, "train", recipe, overrides)
    if print_config:
        typer.echo(to_yaml(cfg), nl=False)
        return
    _quiet_hub_bars()
    metrics = entry(cfg, ["mmthink"] + sys.argv[1:])
    _finish_distributed()
    _print_table(f"{method}: final metrics", metrics)


@app.command("eval")
@user_errors
def eval_(
    method: str = typer.Argument(..., help="Method to evaluate"),
    checkpoint: str = typer.Option(..., "--checkpoint", "-c", help="Trained model folder (e.g. runs/sft/model)"),
    data: str = typer.Option(..., "--data", "-d", help="Evaluation rows (JSONL or parquet)"),
    recipe: Optional[str] = typer.Option(None, "--recipe", "-r", help="Recipe for evaluation settings"),
    out: Optional[str] = typer.Option(None, "--out", help="Folder for eval.json (default: the checkpoint folder)"),
    overrides: Optional[List[str]] = OVERRIDES,
):
    """Evaluate a trained checkpoint of METHOD on a data file; writes eval.json and prints a table."""
    cfg, entry = _load_cfg(method, "eval", recipe, overrides)
    _quiet_hub_bars()
    metrics = entry(cfg, checkpoint, data, out)
    _print_table(f"{method} eval of {Path(checkpoint).name} on {Path(data).name}", metrics)


RECIPE_OPTION = typer.Option(None, "--recipe", "-r", help="Recipe YAML (default: built-in defaults)")


@calibrate_app.command("features")
@user_errors
def calibrate_features(recipe: Optional[str] = RECIPE_OPTION, overrides: Optional[List[str]] = OVERRIDES):
    """Run the LM over every task and store last-token states and option-letter logits (resumable)."""
    from mmthink.methods.thermometer.recipe import extract

    cfg = _load_schema("thermometer", recipe, overrides)
    _quiet_hub_bars()
    summary = extract(cfg, ["mmthink"] + sys.argv[1:])
    _print_table("features: accuracy of the argmax option per task",
                 {t: s["accuracy"] for t, s in summary.items()})


@calibrate_app.command("fit")
@user_errors
def calibrate_fit(recipe: Optional[str] = RECIPE_OPTION, overrides: Optional[List[str]] = OVERRIDES):
    """Train the Thermometer calibrator on all tasks; with eval.loto, the leave-one-task-out table."""
    from mmthink.methods.thermometer.recipe import fit

    cfg = _load_schema("thermometer", recipe, overrides)
    result = fit(cfg, ["mmthink"] + sys.argv[1:])
    typer.echo(f"calibrator: {result['calibrator']} (best step {result['best_step']}, "
               f"validation NLL {result['best_val_nll']:.4f})")


@calibrate_app.command("apply")
@user_errors
def calibrate_apply(
    calibrator: str = typer.Option(..., "--calibrator", help="Calibrator folder (output_dir/calibrator)"),
    features: str = typer.Option(..., "--features", help="A task's features (.safetensors from calibrate features)"),
    out: Optional[str] = typer.Option(None, "--out", help="JSON file for the temperature and probabilities"),
):
    """One temperature for a new task from its unlabelled prompts; before/after metrics when labelled."""
    from mmthink.methods.thermometer.recipe import apply

    result = apply(calibrator, features, out)
    flat = {"temperature": result["temperature"], "n": result["n"]}
    for when in ("uncalibrated", "calibrated"):
        for k in ("ece", "nll", "brier", "accuracy"):
            if when in result:
                flat[f"{when}/{k}"] = result[when][k]
    _print_table(f"calibrate apply: {result['task']}", flat)




def _fair_cfg(recipe, data, target, sensitive, features, epsilon, algorithm, out, overrides):
    """The fair recipe with the command's flags applied as overrides (flags win over the recipe)."""
    flags = {"data.path": data, "data.target": target, "data.sensitive": sensitive, "epsilon": epsilon,
             "algorithm": algorithm, "output_dir": out}
    extra = [f"{k}={v}" for k, v in flags.items() if v is not None]
    if features is not None:
        extra.append(f"data.features=[{','.join(_list(features, '--features'))}]")
    return _load_schema("fair", recipe, extra + list(overrides or []))


@fair_app.command("fit")
@user_errors
def fair_fit(
    data: Optional[str] = typer.Option(None, "--data", help="CSV or Parquet table"),
    target: Optional[str] = typer.Option(None, "--target", help="target column"),
    sensitive: Optional[str] = typer.Option(None, "--sensitive", help="sensitive column (may be mostly empty)"),
    features: Optional[str] = typer.Option(None, "--features", help="comma-separated feature columns (default: all other numeric)"),
    epsilon: Optional[float] = typer.Option(None, "--epsilon", help="fairness budget I(S;Ŷ) <= epsilon (nats)"),
    algorithm: Optional[str] = typer.Option(None, "--method", help="gaussian | robust | bootstrap"),
    out: Optional[str] = typer.Option(None, "--out", help="output folder (output_dir)"),
    recipe: Optional[str] = RECIPE_OPTION,
    overrides: Optional[List[str]] = OVERRIDES,
):
    """Fit a fair predictor; report utility, violation on rows with known S, and the guarantee."""
    from mmthink.methods.fair.recipe import fit

    cfg = _fair_cfg(recipe, data, target, sensitive, features, epsilon, algorithm, out, overrides)
    summary = fit(cfg, ["mmthink"] + sys.argv[1:])
    _print_table(f"fair fit ({cfg.algorithm}, eps={cfg.epsilon}) -> {cfg.output_dir}/predictor", summary)


@fair_app.command("curve")
@user_errors
def fair_curve(
    data: Optional[str] = typer.Option(None, "--data", help="CSV or Parquet table"),
    target: Optional[str] = typer.Option(None, "--target"),
    sensitive: Optional[str] = typer.Option(None, "--sensitive"),
    features: Optional[str] = typer.Option(None, "--features"),
    epsilon: Optional[float] = typer.Option(None, "--epsilon"),
    out: Optional[str] = typer.Option(None, "--out"),
    recipe: Optional[str] = RECIPE_OPTION,
    overrides: Optional[List[str]] = OVERRIDES,
):
    """Utility and violation against the number of S-labelled rows (JSON + PNG), per algorithm."""
    from mmthink.methods.fair.recipe import curve

    cfg = _fair_cfg(recipe, data, target, sensitive, features, epsilon, None, out, overrides)
    curves = curve(cfg, ["mmthink"] + sys.argv[1:])
    flat = {}
    for m, rows in curves["methods"].items():
        for n, u, v in zip(curves["n"], rows["utility"], rows["violation"]):
            flat[f"{m} n={n} utility / violation"] = f"{u:.4f} / {v:.4f}"
    _print_table(f"fair curve -> {cfg.output_dir}/value_of_labels.png", flat)


@fair_app.command("data")
@user_errors
def fair_data(
    which: str = typer.Argument(..., help="diabetes (scikit-learn's bundled table) or synthetic (Gaussian)"),
    out: str = typer.Option("data/fair", "--out"),
    n_labelled: Optional[int] = typer.Option(None, "--n-labelled", help="rows that keep their sensitive value"),
    n: int = typer.Option(5000, "--n", help="synthetic: rows"),
    d: int = typer.Option(5, "--d", help="synthetic: features"),
    seed: int = typer.Option(0, "--seed"),
):
    """Write a table for `mmthink fair fit`: diabetes (sex column) or a synthetic Gaussian one."""
    from mmthink.methods.fair.data import export_diabetes, gaussian_table

    if which == "diabetes":
        path = export_diabetes(Path(out), n_labelled, "sex", seed)
    elif which == "synthetic":
        table = gaussian_table(n, d, n_labelled if n_labelled is not None else n // 10, seed)
        from mmthink.io import write_text_atomic

        path = Path(out) / "synthetic.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, table.frame.to_csv(index=False))
    else:
        raise UserError(f"fair data: expected diabetes or synthetic; got {which!r}")
    typer.echo(f"wrote {path}")


def _finish_distributed() -> None:
    """Tear a multi-process group down after a finished run: left to interpreter shutdown, gloo can abort."""
    if "torch.distributed" not in sys.modules:
        return
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def _print_table(title: str, metrics: dict) -> None:
    import os

    if int(os.environ.get("RANK", "0")) != 0:  # one table per job, not per process
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in metrics.items():
        table.add_row(k, f"{v:.4f}" if isinstance(v, float) else str(v))
    Console().print(table)


def _not_built(name: str, what: str):
    @user_errors
    def command(args: Optional[List[str]] = typer.Argument(None, hidden=True)):
        raise UserError(f"'{name}' ({what}) is not implemented yet")

    command.__doc__ = f"{what} (not implemented yet)."
    return command


for _name, _what in COMMANDS_NOT_BUILT.items():
    app.command(_name, context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(
        _not_built(_name, _what)
    )


@recipes_app.command("list")
@user_errors
def recipes_list():
    """List the shipped recipes."""
    from mmthink.paths import recipes_dir

    root = recipes_dir()
    for path in sorted(root.rglob("*.yaml")):
        if path.parent.name != "accelerate":
            typer.echo(str(path.relative_to(root).with_suffix("")))


@recipes_app.command("show")
@user_errors
def recipes_show(name: str = typer.Argument(..., help="e.g. sft or tiny/sft")):
    """Print a shipped recipe."""
    typer.echo(_recipe_path(name).read_text(), nl=False)


@recipes_app.command("cp")
@user_errors
def recipes_cp(name: str = typer.Argument(...), dest: str = typer.Argument(..., help="File or folder to copy to")):
    """Copy a shipped recipe to edit it."""
    src = _recipe_path(name)
    target = Path(dest)
    if target.is_dir():
        target = target / src.name
    if target.exists():
        raise UserError(f"{target} exists; not overwriting it")
    shutil.copyfile(src, target)
    typer.echo(f"copied {src.name} to {target}")


def _counts(text: str, name: str) -> dict:
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise UserError(f"{name} must be four integers for N = 3,4,5,6, e.g. 100,200,300,400; got {text!r}") from None
    if len(values) != 4 or min(values) < 0:
        raise UserError(f"{name} must be four integers >= 0 for N = 3,4,5,6; got {text!r}")
    return {n: v for n, v in zip((3, 4, 5, 6), values) if v}


@data_app.command("vsp")
@user_errors
def data_vsp(
    out: str = typer.Option("data/vsp", "--out", help="Folder for train.jsonl, test.jsonl and images/"),
    task: str = typer.Option("planning", "--task", help="planning or reasoning"),
    seed: int = typer.Option(0, "--seed"),
    train_counts: str = typer.Option("100,200,300,400", "--train-counts", help="maps per grid size N=3..6"),
    test_counts: str = typer.Option("100,100,100,100", "--test-counts", help="maps per grid size N=3..6"),
    cell_px: int = typer.Option(28, "--cell-px", help="pixels per cell (28 = one merged Qwen2.5-VL token)"),
):
    """Generate VSP (FrozenLake) rows in the official Mirage format, with map and helper images."""
    from mmthink.tasks import vsp

    if task not in vsp.TASKS:
        raise UserError(f"--task must be one of {', '.join(vsp.TASKS)}; got {task!r}")
    if cell_px < 1:
        raise UserError(f"--cell-px must be >= 1; got {cell_px}")
    paths = vsp.generate_split(Path(out), task, seed, _counts(train_counts, "--train-counts"),
                               _counts(test_counts, "--test-counts"), cell_px)
    for path in paths:
        typer.echo(f"wrote {path}")


def _list(text: str, name: str, kind=str) -> list:
    try:
        return [kind(v.strip()) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"{name} must be a comma-separated list; got {text!r}") from None


@data_app.command("math")
@user_errors
def data_math(
    out: str = typer.Option("data/math", "--out", help="Folder for train.jsonl and test.jsonl"),
    n_train: int = typer.Option(5000, "--n-train"),
    n_test: int = typer.Option(300, "--n-test"),
    seed: int = typer.Option(0, "--seed"),
    kinds: str = typer.Option("chain,linear,word", "--kinds", help="chain, linear, word"),
    levels: str = typer.Option("1,2,3", "--levels", help="difficulty levels 1..4"),
):
    """Generate multi-step math problems with known answers and intermediate steps."""
    from mmthink.io import write_jsonl
    from mmthink.tasks import math as math_task

    if n_train < 1 or n_test < 0:
        raise UserError("--n-train must be >= 1 and --n-test >= 0")
    train, test = math_task.generate_split(n_train, n_test, seed, tuple(_list(kinds, "--kinds")),
                                           tuple(_list(levels, "--levels", int)))
    for name, rows in (("train.jsonl", train), ("test.jsonl", test)):
        write_jsonl(rows, Path(out) / name)
        typer.echo(f"wrote {Path(out) / name} ({len(rows)} rows)")


@data_app.command("coat")
@user_errors
def data_coat(
    source: str = typer.Option(..., "--in", help="math rows (ours: with steps and step_values)"),
    out: str = typer.Option(..., "--out", help="chat JSONL for `mmthink train sft`"),
    seed: int = typer.Option(0, "--seed"),
    mix: str = typer.Option("continue=0.4,reflect=0.4,explore=0.2", "--mix", help="demo kinds and their weights"),
    cot: bool = typer.Option(False, "--cot", help="plain chain-of-thought instead of COAT (the baseline)"),
):
    """Write Satori format-tuning rows: synthetic COAT demonstrations of procedural math problems."""
    from mmthink.io import write_jsonl
    from mmthink.methods.satori.coat import coat_sft_rows, cot_sft_rows
    from mmthink.tasks import math as math_task

    weights = {}
    for item in _list(mix, "--mix"):
        key, _, value = item.partition("=")
        try:
            weights[key.strip()] = float(value)
        except ValueError:
            raise UserError(f"--mix entries look like reflect=0.4; got {item!r}") from None
    rows = math_task.load_math(source)
    chat = cot_sft_rows(rows) if cot else coat_sft_rows(rows, seed, weights)
    write_jsonl(chat, Path(out))
    typer.echo(f"wrote {out} ({len(chat)} rows)")


@app.command()
@user_errors
def env():
    """Versions, devices, bitsandbytes backend and offline flags."""
    from mmthink.envinfo import report

    for key, value in report().items():
        typer.echo(f"{key:<22} {value}")


def main() -> None:
    app(prog_name="mmthink")


if __name__ == "__main__":
    main()
