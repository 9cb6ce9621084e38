"""Run bookkeeping: the run folder's provenance files, metrics.jsonl, TensorBoard and progress display.

Progress is a rich bar (rate, ETA) on a terminal and plain lines with percent and ETA elsewhere, so
that SLURM logs stay readable.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

from mmthink.io import write_text_atomic

_VERSIONED = ("torch", "transformers", "accelerate", "peft", "datasets", "safetensors", "bitsandbytes", "omegaconf")


def package_versions() -> dict:
    from importlib import metadata

    out = {"python": sys.version.split()[0]}
    for name in ("mmthink",) + _VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_commit() -> Optional[str]:
    here = Path(__file__).resolve().parent
    try:
        res = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=here, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if res.returncode != 0:
        return None
    return res.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def write_run_info(output_dir: Path, resolved_yaml: str, command: list[str], extra: Optional[dict] = None) -> None:
    """resolved_config.yaml and run_info.json (git commit, package versions, command line, ``extra``)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(output_dir / "resolved_config.yaml", resolved_yaml)
    info = {"git_commit": git_commit(), "versions": package_versions(), "command": command, "time": time.time()}
    info.update(extra or {})
    write_text_atomic(output_dir / "run_info.json", json.dumps(info, indent=2))


class MetricsLog:
    """Appends one JSON object per logged step to metrics.jsonl (and TensorBoard when asked)."""

    def __init__(self, output_dir: Path, tensorboard: bool, resume_step: int = 0):
        self.path = output_dir / "metrics.jsonl"
        if resume_step and self.path.exists():
            # Lines past the checkpoint were computed by the killed run and will be recomputed.
            kept = [ln for ln in self.path.read_text().splitlines() if ln and json.loads(ln)["step"] <= resume_step]
            write_text_atomic(self.path, "".join(ln + "\n" for ln in kept))
        elif not resume_step and self.path.exists():
            self.path.unlink()
        self._file = open(self.path, "a")
        self._tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(output_dir / "tensorboard"))

    def log(self, step: int, metrics: dict) -> None:
        row = {"step": step, **{k: _plain(v) for k, v in metrics.items()}}
        self._file.write(json.dumps(row) + "\n")
        self._file.flush()
        if self._tb is not None:
            for k, v in row.items():
                if k != "step" and isinstance(v, (int, float)):
                    self._tb.add_scalar(k, v, step)

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()


def _plain(v):
    return v.item() if hasattr(v, "item") else v


def _fmt_time(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Progress:
    """A progress display over ``total`` steps: ``rich``, ``plain`` lines, or ``none``."""

    def __init__(self, total: int, initial: int = 0, mode: str = "auto", every_s: float = 30.0, desc: str = "train"):
        if mode == "auto":
            mode = "rich" if sys.stderr.isatty() else "plain"
        self.mode, self.total, self.done, self.every_s, self.desc = mode, total, initial, every_s, desc
        # None, not 0.0: the monotonic clock counts from boot, so "0.0" would read as "printed a moment ago"
        # on a machine up for less than every_s and the first line would never appear.
        self._start_done, self._t0, self._last = initial, time.monotonic(), None
        self._bar = None
        if mode == "rich":
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.console import Console
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                TextColumn("{task.fields[info]}"),
                console=Console(stderr=True),  # stdout stays for results, as with plain lines
            )
            self._bar.start()
            self._task = self._bar.add_task(desc, total=total, completed=initial, rate="", info="")

    def _rate(self) -> float:
        elapsed = time.monotonic() - self._t0
        return (self.done - self._start_done) / elapsed if elapsed > 0 else 0.0

    def update(self, done: int, info: str = "") -> None:
        self.done = done
        rate = self._rate()
        if self._bar is not None:
            self._bar.update(self._task, completed=done, rate=f"{rate:.2f} it/s", info=info)
        elif self.mode == "plain":
            now = time.monotonic()
            if self._last is None or now - self._last >= self.every_s or done >= self.total:
                self._last = now
                eta = (self.total - done) / rate if rate > 0 else float("nan")
                eta_s = _fmt_time(eta) if eta == eta else "?"
                pct = 100.0 * done / max(self.total, 1)
                print(
                    f"[{self.desc}] {done}/{self.total} ({pct:.0f}%) {rate:.2f} it/s ETA {eta_s} {info}".rstrip(),
                    file=sys.stderr,
                    flush=True,
                )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
