"""The ``mmthink`` command line: it mounts commands and knows no method.

``train`` / ``eval`` look a method up in ``mmthink.registry``; the verbs a method owns (``calibrate``,
``fair``), the shared ``serve`` and the generators under ``data`` are mounted from the registry's rows
and imported only when they run, so ``mmthink --help`` loads no method, torch or transformers. A
``UserError`` anywhere below prints one line on stderr and exits with code 2.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import List, Optional

import click
import typer
from typer.core import TyperGroup

from mmthink import registry
from mmthink.commands import (DRY_RUN, EVAL_OVERRIDES, GPU_MEMORY, GPUS, OVERRIDES, STRATEGY, OneLineUsageErrors, command_line,
                              dry_run_target, finish_distributed, method_recipe, print_table, quiet_hub_bars,
                              user_errors)
from mmthink.errors import UserError
from mmthink.io import check_output_dir


class _Stub(click.Command):
    """What ``--help`` lists for a registry verb: its name and help line; the real command loads when it runs."""

    def __init__(self, name: str, verb: registry.Verb):
        super().__init__(name, help=verb.help if verb.target else f"{verb.help} (not implemented yet).")
        self.verb = verb

    def load(self) -> click.Command:
        if self.verb.target is None:
            return _not_built(self.name, self.verb.help)
        target = registry.load(self.verb.target)
        if not isinstance(target, typer.Typer):  # a single command function
            single = typer.Typer()
            single.command(self.name)(target)
            target = single
        command = typer.main.get_command(target)
        command.name = self.name
        return command


class _LazyGroup(OneLineUsageErrors, TyperGroup):
    lazy: dict = {}  # name -> registry.Verb, set per group

    def list_commands(self, ctx):
        return super().list_commands(ctx) + sorted(set(self.lazy) - set(self.commands))

    def get_command(self, ctx, name):
        if name in self.lazy and name not in self.commands:
            return _Stub(name, self.lazy[name])
        return super().get_command(ctx, name)

    def resolve_command(self, ctx, args):
        name, command, rest = super().resolve_command(ctx, args)
        return name, command.load() if isinstance(command, _Stub) else command, rest


def _lazy(verbs: dict) -> type:
    return type("LazyGroup", (_LazyGroup,), {"lazy": verbs})


def _not_built(name: str, what: str) -> click.Command:
    @user_errors
    def command(args: Optional[List[str]] = typer.Argument(None, hidden=True)):
        raise UserError(f"'{name}' ({what}) is not implemented yet")

    app = typer.Typer()
    app.command(name, context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(command)
    return typer.main.get_command(app)


app = typer.Typer(
    cls=_lazy(registry.verbs()),
    help="Train, evaluate, calibrate and serve reasoning and uncertainty methods for (multimodal) LMs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
recipes_app = typer.Typer(help="List, show and copy the shipped recipes.", no_args_is_help=True)
app.add_typer(recipes_app, name="recipes")
app.add_typer(typer.Typer(cls=_lazy(registry.data_generators()), no_args_is_help=True,
                          help="Generate task data procedurally (and rewrite the shipped copies)."), name="data")


@app.command()
@user_errors
def train(
    method: str = typer.Argument(..., help=f"Method to train: {', '.join(registry.names('train'))}"),
    recipe: str = typer.Option(..., "--recipe", "-r", help="Recipe YAML (a path, or a shipped name like tiny/sft)"),
    overrides: Optional[List[str]] = OVERRIDES,
    print_config: bool = typer.Option(False, "--print-config", help="Print the resolved recipe and exit"),
    dry_run: bool = DRY_RUN,
    gpus: int = GPUS,
    gpu_memory: float = GPU_MEMORY,
    strategy: Optional[str] = STRATEGY,
):
    """Train METHOD with a recipe, e.g. mmthink train sft --recipe recipes/tiny/sft.yaml optim.lr=1e-4"""
    from mmthink.config import path_report, to_yaml

    entry = registry.entry(method, "dry_run" if dry_run else "train")
    cfg = method_recipe(method, recipe, overrides)
    if print_config:
        typer.echo(to_yaml(cfg) + path_report(cfg), nl=False)
        return
    if dry_run:
        registry.load(entry)(cfg, dry_run_target(gpus, gpu_memory, strategy))
        return
    check_output_dir(cfg.output_dir)
    quiet_hub_bars()
    metrics = registry.load(entry)(cfg, command_line())
    finish_distributed()
    print_table(f"{method}: final metrics", metrics)


@app.command("eval")
@user_errors
def eval_(
    method: str = typer.Argument(..., help=f"Method to evaluate: {', '.join(registry.names('eval'))}"),
    checkpoint: Optional[str] = typer.Option(None, "--checkpoint", "-c", help="Trained model folder (e.g. "
                                             "runs/sft/model); vca: optional, the VLM to use"),
    data: str = typer.Option(..., "--data", "-d", help="Evaluation rows (JSONL or parquet)"),
    recipe: Optional[str] = typer.Option(None, "--recipe", "-r", help="Recipe for evaluation settings"),
    out: Optional[str] = typer.Option(None, "--out", help="Folder for eval.json (default: the checkpoint folder)"),
    overrides: Optional[List[str]] = EVAL_OVERRIDES,
):
    """Evaluate a trained checkpoint of METHOD on a data file; writes eval.json and prints a table."""
    entry = registry.entry(method, "eval")
    if checkpoint is None and registry.METHODS[method].eval_checkpoint:
        raise UserError(f"'eval {method}' needs --checkpoint (a trained model folder)")
    cfg = method_recipe(method, recipe, overrides)
    if out:
        check_output_dir(out, "--out")
    quiet_hub_bars()
    metrics = registry.load(entry)(cfg, checkpoint, data, out)
    print_table(f"{method} eval of {Path(checkpoint or method).name} on {Path(data).name}", metrics)


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
    from mmthink.config import find_recipe

    typer.echo(find_recipe(name).read_text(), nl=False)


@recipes_app.command("cp")
@user_errors
def recipes_cp(name: str = typer.Argument(...), dest: str = typer.Argument(..., help="File or folder to copy to")):
    """Copy a shipped recipe to edit it."""
    from mmthink.config import find_recipe

    src = find_recipe(name)
    target = Path(dest)
    if target.is_dir():
        target = target / src.name
    if target.exists():
        raise UserError(f"{target} exists; not overwriting it")
    check_output_dir(target.parent, "destination")
    shutil.copyfile(src, target)
    typer.echo(f"copied {src.name} to {target}")


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
