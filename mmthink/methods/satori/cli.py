"""Satori's own command, mounted as ``mmthink data coat`` by its registry row."""

from __future__ import annotations

from pathlib import Path

import typer

from mmthink.commands import split_list, user_errors
from mmthink.errors import UserError
from mmthink.io import check_output_file


@user_errors
def coat(
    source: str = typer.Option(..., "--in", help="math rows (ours: with steps and step_values)"),
    out: str = typer.Option(..., "--out", help="chat JSONL for `mmthink train sft`"),
    seed: int = typer.Option(0, "--seed"),
    mix: str = typer.Option("continue=0.4,reflect=0.4,explore=0.2", "--mix", help="demo kinds and their weights"),
    cot: bool = typer.Option(False, "--cot", help="plain chain-of-thought instead of COAT (the baseline)"),
):
    """Write Satori format-tuning rows: synthetic COAT demonstrations of procedural math problems."""
    check_output_file(out)
    from mmthink.io import write_jsonl
    from mmthink.methods.satori.coat import coat_sft_rows, cot_sft_rows
    from mmthink.tasks import math as math_task

    weights = {}
    for item in split_list(mix, "--mix"):
        key, _, value = item.partition("=")
        try:
            weights[key.strip()] = float(value)
        except ValueError:
            raise UserError(f"--mix entries look like reflect=0.4; got {item!r}") from None
    rows = math_task.load_math(source)
    chat = cot_sft_rows(rows) if cot else coat_sft_rows(rows, seed, weights)
    write_jsonl(chat, Path(out))
    typer.echo(f"wrote {out} ({len(chat)} rows)")
