"""What every command shares, wherever it is defined: the one-line refusal, the recipe of a method,
the result table, and the common options.

``mmthink/cli.py`` mounts commands; methods define theirs in ``methods/<m>/cli.py`` on top of this
module. Heavy libraries are imported inside the commands, never here.
"""

from __future__ import annotations

import functools
import os
import sys
from typing import List, Optional

import typer

from mmthink.errors import EXIT_USER_ERROR, UserError

def overrides(example: str):
    """The trailing ``key=value`` recipe overrides of a command, with an example its recipe accepts."""
    return typer.Argument(None, help=f"Recipe overrides, e.g. {example}", show_default=False)


OVERRIDES = overrides("optim.lr=1e-5 runner.max_steps=10")  # train: every LM recipe has these
EVAL_OVERRIDES = overrides("eval.batch_size=8 eval.limit=100")
RECIPE_OPTION = typer.Option(None, "--recipe", "-r", help="Recipe YAML (a path, or a shipped name like tiny/sft); "
                                                          "default: the built-in settings")


class OneLineUsageErrors:
    """A command group mixin: click's usage errors (a missing option, an unknown flag) as one line on
    stderr and exit 2, like every other user error, instead of a boxed block."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        import click

        try:  # typer vendors its own click; its commands raise that copy's exceptions
            from typer._click import exceptions as vendored
        except ImportError:
            vendored = click.exceptions
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except (click.UsageError, vendored.UsageError) as e:
            hint = f" (see '{e.ctx.command_path} --help')" if e.ctx is not None else ""
            typer.echo(f"mmthink: error: {e.format_message()}{hint}", err=True)
            sys.exit(EXIT_USER_ERROR)
        except (click.Abort, getattr(vendored, "Abort", click.Abort)):
            typer.echo("mmthink: aborted", err=True)
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)


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


def method_recipe(method: str, recipe: Optional[str], overrides: Optional[List[str]]):
    """The typed recipe of ``method``: a recipe file (or shipped name) and overrides, or the defaults and overrides."""
    from mmthink import registry
    from mmthink.config import load

    return load(registry.schema(method), recipe, list(overrides or []), method)


def command_line() -> list[str]:
    """The command as typed, saved in run_info.json."""
    return ["mmthink"] + sys.argv[1:]


def quiet_hub_bars() -> None:
    if not sys.stderr.isatty():
        # Per-file download/shard bars make unreadable SLURM logs; our own progress lines remain.
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def finish_distributed() -> None:
    """Tear a multi-process group down after a finished run: left to interpreter shutdown, gloo can abort."""
    if "torch.distributed" not in sys.modules:
        return
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def print_table(title: str, metrics: dict) -> None:
    if int(os.environ.get("RANK", "0")) != 0:  # one table per job, not per process
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in metrics.items():
        table.add_row(k, f"{v:.4g}" if isinstance(v, float) else str(v))
    Console().print(table)


def split_list(text: str, name: str, kind=str) -> list:
    """``a,b,c`` → ``[kind(a), kind(b), kind(c)]``, or one line naming the option."""
    try:
        return [kind(v.strip()) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"{name} must be a comma-separated list; got {text!r}") from None


DRY_RUN = typer.Option(False, "--dry-run", help="Check the recipe at its real size (no weights, no training): "
                       "parameters, memory per device, one loss; exit 2 if it does not fit")
GPUS = typer.Option(1, "--gpus", help="With --dry-run: devices the run would use")
GPU_MEMORY = typer.Option(80.0, "--gpu-memory", help="With --dry-run: GiB per device")
STRATEGY = typer.Option(None, "--strategy", help="With --dry-run: ddp, fsdp, zero2 or zero3 (default: from the "
                        "accelerate config, else ddp)", show_default=False)


def dry_run_target(gpus: int, gpu_memory: float, strategy: Optional[str]):
    """The ``--gpus``, ``--gpu-memory`` and ``--strategy`` of a dry run, checked."""
    from mmthink.runner.dryrun import Target, strategy_from_accelerate

    target = Target(gpus, gpu_memory, strategy or strategy_from_accelerate())
    target.check()
    return target
