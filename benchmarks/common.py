"""What the benchmark and study scripts share: running the CLI, timing, and writing docs/results.md."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path


def mmthink(*args) -> None:
    """Run ``python -m mmthink.cli ARGS`` (its tables go to /dev/null; errors stop the study)."""
    subprocess.run([sys.executable, "-m", "mmthink.cli", *map(str, args)], check=True, stdout=subprocess.DEVNULL)


def best_of(fn, repeats: int) -> float:
    """The fastest of ``repeats`` timed calls: the least disturbed by other work on the machine."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def write_section(results: Path, name: str, lines: list[str], echo: bool = True) -> str:
    """Replace (or append) the block between ``<!-- name:begin -->`` and ``<!-- name:end -->``."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    section = "\n".join([begin, *lines, end])
    text = results.read_text() if results.exists() else "# Results\n\n"
    if begin in text:
        text = text[: text.index(begin)] + section + text[text.index(end) + len(end):]
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    results.write_text(text)
    if echo:
        print(section)
    return section


def run_key(*parts) -> str:
    """What a study's run depends on: its arguments, the code's commit and any parent keys given."""
    import hashlib
    import json

    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    return hashlib.sha256(json.dumps([commit, *map(str, parts)]).encode()).hexdigest()


def done_with(folder: Path, key: str, needs: str) -> bool:
    """Whether ``folder`` holds a finished run (its file ``needs``) made with ``key``; a stale one is deleted."""
    import json
    import shutil

    stamp = folder / "study.json"
    if (folder / needs).is_file() and stamp.is_file() and json.loads(stamp.read_text()).get("key") == key:
        return True
    shutil.rmtree(folder, ignore_errors=True)
    return False


def mark_done(folder: Path, key: str) -> None:
    import json

    (folder / "study.json").write_text(json.dumps({"key": key}))
