"""The sandbox fences model-written code: every escape attempt fails safely, within the deadline, and
leaves nothing behind (no files, no processes)."""

import os
import subprocess
import time

import pytest

from mmthink.tasks import sandbox
from mmthink.tasks.sandbox import Limits, run_python

BWRAP = sandbox.isolation() == "bwrap"
needs_bwrap = pytest.mark.skipif(not BWRAP, reason="bubblewrap missing or unusable: the rlimit fallback does not "
                                                   "fence the filesystem or processes of root")


def _leftovers(tag: str) -> list:
    out = subprocess.run(["pgrep", "-af", tag], capture_output=True, text=True).stdout.splitlines()
    return [line for line in out if "pgrep" not in line]


@pytest.fixture(autouse=True)
def _no_traces(tmp_path):
    before = set(os.listdir("/tmp"))
    yield
    time.sleep(0.2)
    assert not [n for n in set(os.listdir("/tmp")) - before if n.startswith("mmthink-sbx")]
    assert not _leftovers("mmthink-sbx")


def _timed(code, timeout_s=1.5, **kw):
    t0 = time.monotonic()
    run = run_python(code, timeout_s, **kw)
    return run, time.monotonic() - t0


def test_a_plain_program_runs_and_prints():
    run, _ = _timed("print(6 * 7)")
    assert run.returncode == 0 and run.stdout.strip() == "42" and not run.timed_out


@pytest.mark.parametrize("code", ["while True: pass", "import time\ntime.sleep(60)"])
def test_loops_and_sleeps_are_killed_at_the_deadline(code):
    run, took = _timed(code)
    assert run.timed_out and run.returncode is None
    assert took <= 1.5 + 1.0


def test_a_2gb_allocation_fails():
    run, _ = _timed("x = bytearray(2 * 1024**3)\nprint('allocated')", limits=Limits(memory_mb=512))
    assert run.returncode != 0 and "allocated" not in run.stdout and "MemoryError" in run.stderr


def test_a_huge_file_write_stops_at_the_file_limit():
    run, _ = _timed("f = open('big', 'wb')\nfor _ in range(64):\n    f.write(b'x' * 2**20)\nprint('wrote')",
                    limits=Limits(file_mb=4))
    assert run.returncode != 0 and "wrote" not in run.stdout


def test_huge_output_is_capped_too():
    run, _ = _timed("print('x' * (64 * 2**20))", limits=Limits(file_mb=4))
    assert run.returncode != 0 and len(run.stdout) <= 4 * 2**20


@needs_bwrap
def test_a_fork_storm_is_contained_and_killed():
    code = "import os, time\nfor _ in range(40):\n    if os.fork() == 0:\n        time.sleep(60)\ntime.sleep(60)\n"
    run, took = _timed("# mmthink-sbx-forks\n" + code)
    assert run.timed_out and took <= 1.5 + 1.0
    time.sleep(0.3)
    assert not _leftovers("main.py")


@needs_bwrap
def test_files_outside_the_workdir_cannot_be_read(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("the planted secret")
    run, _ = _timed(f"print(open({str(secret)!r}).read())")
    assert run.returncode != 0 and "planted" not in run.stdout and "No such file" in run.stderr


@needs_bwrap
def test_writes_outside_the_workdir_do_not_land(tmp_path):
    target = tmp_path / "written.txt"
    run, _ = _timed(f"open({str(target)!r}, 'w').write('x')")
    assert not target.exists()
    run, _ = _timed("import pathlib\npathlib.Path('/usr/mmthink-evil').write_text('x')")
    assert run.returncode != 0 and not os.path.exists("/usr/mmthink-evil")


@needs_bwrap
def test_no_network_not_even_loopback():
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    try:
        run, _ = _timed(f"import socket\ns = socket.socket()\ns.settimeout(1)\ns.connect(('127.0.0.1', {port}))\n"
                        "print('connected')")
    finally:
        server.close()
    assert run.returncode != 0 and "connected" not in run.stdout


def test_the_fallback_still_kills_and_limits(monkeypatch):
    monkeypatch.setattr(sandbox, "_ISOLATION", "rlimits")
    run, took = _timed("while True: pass")
    assert run.timed_out and took <= 2.5 and run.isolation == "rlimits"
    run, _ = _timed("x = bytearray(2 * 1024**3)", limits=Limits(memory_mb=512))
    assert run.returncode != 0
    assert "rlimits only" in sandbox.describe()
