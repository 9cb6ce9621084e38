"""Progress display and metrics log."""

import json

from mmthink.runner.tracking import MetricsLog, Progress


def test_plain_progress_prints_percent_rate_and_eta(capsys):
    p = Progress(total=10, mode="plain", every_s=0.0, desc="sft")
    for step in range(1, 11):
        p.update(step, "loss 1.0")
    p.close()
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 10
    assert lines[4].startswith("[sft] 5/10 (50%)") and "it/s ETA" in lines[4] and lines[4].endswith("loss 1.0")
    assert "ETA 0:00:00" in lines[-1]


def test_plain_progress_is_throttled(capsys):
    p = Progress(total=100, mode="plain", every_s=3600.0)
    for step in range(1, 101):
        p.update(step)
    # the first update and the last one only
    assert len(capsys.readouterr().err.strip().splitlines()) == 2


def test_plain_progress_prints_its_first_line_on_a_freshly_booted_machine(capsys, monkeypatch):
    # time.monotonic() counts from boot: a machine up 5 s must still show the first update.
    import mmthink.runner.tracking as tracking

    monkeypatch.setattr(tracking.time, "monotonic", lambda: 5.0)
    p = Progress(total=100, mode="plain", every_s=3600.0)
    p.update(1)
    assert capsys.readouterr().err.startswith("[train] 1/100 (1%)")


def test_rich_progress_renders_without_a_terminal(capsys):
    p = Progress(total=3, mode="rich")
    for step in range(1, 4):
        p.update(step, "loss 0.5")
    p.close()
    assert "3/3" in capsys.readouterr().err


def test_metrics_log_truncates_past_the_resume_step(tmp_path):
    log = MetricsLog(tmp_path, tensorboard=False)
    for step in range(1, 6):
        log.log(step, {"loss": float(step)})
    log.close()
    again = MetricsLog(tmp_path, tensorboard=False, resume_step=3)
    again.log(4, {"loss": 40.0})
    again.close()
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [(r["step"], r["loss"]) for r in rows] == [(1, 1.0), (2, 2.0), (3, 3.0), (4, 40.0)]
