"""Running untrusted (model-written) Python: one process per program, fenced in.

Every run gets a throw-away working directory, a wall deadline after which its whole process tree is
killed, and rlimits on CPU seconds, address space, file size (stdout and stderr go to files, so the
limit also caps output) and open files. Two strengths:

- ``bwrap`` (Debian's bubblewrap, installed by ``make install``): the program runs in new user,
  pid, network, ipc and uts namespaces (``--unshare-all``) and sees only the Python installation
  (read-only), ``/proc``, ``/dev``, an empty ``/tmp`` and its working directory as ``/work``: no
  network (not even loopback), no other file, and a fork storm stays inside its pid namespace, all
  of which dies with bwrap (``--die-with-parent``; the kernel kills a namespace when its init exits).
- ``rlimits`` (fallback, no bwrap): a new session with the rlimits above (``RLIMIT_NPROC`` too, which
  does not bind root) and the process group killed at the deadline; the network and the rest of the
  filesystem are NOT fenced. ``mmthink env`` says which one is active.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional


@dataclass(frozen=True)
class Limits:
    memory_mb: int = 1024  # address space of each process
    file_mb: int = 16  # largest file it may write (stdout / stderr included)
    open_files: int = 64
    processes: int = 64  # RLIMIT_NPROC (the rlimit fallback, non-root only)


@dataclass
class Run:
    returncode: Optional[int]  # None when killed at the deadline
    stdout: str
    stderr: str
    timed_out: bool
    seconds: float
    isolation: str


def isolation() -> str:
    """``bwrap`` when bubblewrap is installed and can create its namespaces here, else ``rlimits``."""
    global _ISOLATION
    if _ISOLATION is None:
        _ISOLATION = "rlimits"
        if shutil.which("bwrap"):
            try:
                probe = subprocess.run(["bwrap", "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/", "true"],
                                       capture_output=True, timeout=10)
                if probe.returncode == 0:
                    _ISOLATION = "bwrap"
            except (OSError, subprocess.TimeoutExpired):
                pass
    return _ISOLATION


_ISOLATION: Optional[str] = None


def describe() -> str:
    """One line for ``mmthink env``."""
    if isolation() == "bwrap":
        return "bwrap (namespaces: no network, no files outside the work dir, pid namespace) + rlimits"
    return ("rlimits only (bubblewrap missing or unusable: generated code can reach the network and the "
            "filesystem; install bubblewrap)")


def _python_roots() -> list:
    """Folders the interpreter needs, read-only inside the sandbox."""
    exe = Path(sys.executable).resolve()
    roots = {Path(sys.base_prefix).resolve(), exe.parent.parent}
    return sorted(str(r) for r in roots if r.exists())


def _bwrap_command(python: str, workdir: Path) -> list:
    cmd = ["bwrap", "--unshare-all", "--die-with-parent", "--new-session", "--clearenv",
           "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "HOME", "/work", "--setenv", "PYTHONDONTWRITEBYTECODE", "1"]
    for d in ("/usr", "/bin", "/lib", "/lib64", "/etc/alternatives"):
        cmd += ["--ro-bind-try", d, d]
    for root in _python_roots():
        cmd += ["--ro-bind", root, root]
    cmd += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--bind", str(workdir), "/work", "--chdir", "/work"]
    return cmd + [python, "-I", "main.py"]


def _limit(timeout_s: float, limits: Limits, fallback: bool):
    import resource

    def apply():  # in the child, before exec (start_new_session already made it a group leader)
        mb = 2**20
        resource.setrlimit(resource.RLIMIT_CPU, (int(timeout_s) + 1, int(timeout_s) + 2))
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_mb * mb, limits.memory_mb * mb))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_mb * mb, limits.file_mb * mb))
        resource.setrlimit(resource.RLIMIT_NOFILE, (limits.open_files, limits.open_files))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if fallback:
            resource.setrlimit(resource.RLIMIT_NPROC, (limits.processes, limits.processes))

    return apply


def run_python(code: str, timeout_s: float, limits: Limits = Limits(), files: Optional[dict] = None) -> Run:
    """Run ``code`` as ``main.py`` in a fresh working directory (plus ``files``: name -> text) and clean up."""
    mode = isolation()
    work = Path(tempfile.mkdtemp(prefix="mmthink-sbx-"))
    logs = Path(tempfile.mkdtemp(prefix="mmthink-sbx-out-"))  # outside the sandbox's view
    proc = None
    t0 = time.monotonic()
    try:
        (work / "main.py").write_text(code)
        for name, text in (files or {}).items():
            (work / name).write_text(text)
        python = str(Path(sys.executable).resolve())
        cmd = _bwrap_command(python, work) if mode == "bwrap" else [python, "-I", "main.py"]
        with open(logs / "out", "wb") as out, open(logs / "err", "wb") as err:
            env = {"PATH": "/usr/bin:/bin", "HOME": str(work), "PYTHONDONTWRITEBYTECODE": "1"}
            proc = subprocess.Popen(cmd, cwd=work, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env,
                                    start_new_session=True, preexec_fn=_limit(timeout_s, limits, mode != "bwrap"))
            try:
                proc.wait(timeout=timeout_s)
                timed_out = False
            except subprocess.TimeoutExpired:
                timed_out = True
            _kill_group(proc)
        # Whole files: the file-size limit already bounds them, and a graded run's reports come last.
        read = lambda p: p.read_bytes().decode("utf-8", "replace")  # noqa: E731
        return Run(None if timed_out else proc.returncode, read(logs / "out"), read(logs / "err"), timed_out,
                   time.monotonic() - t0, mode)
    finally:
        if proc is not None and proc.poll() is None:
            _kill_group(proc)
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(logs, ignore_errors=True)


def _kill_group(proc) -> None:
    """SIGKILL the process group (the fallback's whole tree; bwrap, whose namespace dies with it)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
