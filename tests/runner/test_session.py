"""Resuming a run under changed settings is refused with the diff, unless the change is allowed."""

import pytest

from mmthink.errors import UserError
from mmthink.runner.session import check_unchanged

TINY = "recipes/tiny/sft.yaml"


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    from typer.testing import CliRunner

    from mmthink.cli import app

    out = tmp_path_factory.mktemp("run")
    res = CliRunner().invoke(app, ["train", "sft", "--recipe", TINY, "runner.max_steps=4", "runner.save_every=2",
                                   "data.eval_file=null", "logging.progress=none", f"output_dir={out}"])
    assert res.exit_code == 0, res.output
    return out


def test_a_changed_batch_size_is_refused_with_the_diff(cli, finished_run):
    before = (finished_run / "resolved_config.yaml").read_text()
    res = cli("train", "sft", "--recipe", TINY, "runner.max_steps=4", "runner.save_every=2", "data.eval_file=null",
              "logging.progress=none", "runner.batch_size=64", f"output_dir={finished_run}")
    assert res.exit_code == 2
    line = res.stderr.strip()
    assert len(line.splitlines()) == 1
    assert "trained with other settings (runner.batch_size: 32 there, 64 now)" in line
    assert "runner.resume_allow_changes=[runner.batch_size]" in line
    assert (finished_run / "resolved_config.yaml").read_text() == before  # not overwritten


def test_a_changed_lr_resumes_when_allowed_and_more_steps_are_always_allowed(cli, finished_run):
    args = ("train", "sft", "--recipe", TINY, "runner.save_every=2", "data.eval_file=null", "logging.progress=none",
            f"output_dir={finished_run}")
    res = cli(*args, "runner.max_steps=4", "optim.lr=1e-2")
    assert res.exit_code == 2 and "optim.lr:" in res.stderr
    res = cli(*args, "runner.max_steps=6", "optim.lr=1e-2", "runner.resume_allow_changes=[optim.lr]")
    assert res.exit_code == 0, res.stderr
    assert "resumed from" in res.stdout + res.stderr


def test_check_unchanged_compares_flattened_configs(tmp_path):
    ckpt = tmp_path / "checkpoints" / "step-000002"
    ckpt.mkdir(parents=True)
    (tmp_path / "resolved_config.yaml").write_text("seed: 1\noptim:\n  lr: 0.1\n  betas: [0.9, 0.99]\nrunner:\n  max_steps: 5\n")
    check_unchanged(ckpt, "seed: 1\noptim:\n  lr: 0.1\n  betas: [0.9, 0.99]\nrunner:\n  max_steps: 50\n")
    with pytest.raises(UserError, match=r"optim.betas: \[0.9, 0.99\] there, \[0.9, 0.999\] now; seed: 1 there, 2 now"):
        check_unchanged(ckpt, "seed: 2\noptim:\n  lr: 0.1\n  betas: [0.9, 0.999]\n")
    check_unchanged(ckpt, "seed: 2\noptim:\n  lr: 0.1\n  betas: [0.9, 0.999]\n", ["seed", "optim.*"])
