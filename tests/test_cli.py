"""The CLI surface: fast help without torch, recipe commands, env, print-config."""

import subprocess
import sys

import pytest

from mmthink.registry import METHODS


def test_help_does_not_import_torch_or_transformers():
    code = "import sys; from mmthink.cli import app; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]


def test_help_lists_commands(cli):
    res = cli("--help")
    assert res.exit_code == 0
    for command in ("train", "eval", "serve", "calibrate", "fair", "video-explore", "say", "recipes", "env"):
        assert command in res.stdout


def test_every_mission_method_is_registered():
    assert {"sft", "mirage", "satori", "evoscale", "tango", "tts", "mole", "edl", "bbpt"} <= set(METHODS)


def test_print_config_prints_resolved_recipe_and_exits(cli, tmp_path):
    res = cli("train", "sft", "--recipe", "recipes/tiny/sft.yaml", "--print-config", "optim.lr=0.5",
              f"output_dir={tmp_path / 'run'}")
    assert res.exit_code == 0
    assert "lr: 0.5" in res.stdout and "name: tiny-llama" in res.stdout
    assert not (tmp_path / "run").exists()


def test_recipes_list_show_cp(cli, tmp_path):
    res = cli("recipes", "list")
    assert res.exit_code == 0 and {"sft", "tiny/sft"} <= set(res.stdout.split())
    assert "accelerate/ddp" not in res.stdout
    shown = cli("recipes", "show", "tiny/sft")
    assert shown.exit_code == 0 and "base: ../sft.yaml" in shown.stdout
    copied = cli("recipes", "cp", "sft", tmp_path)
    assert copied.exit_code == 0
    assert (tmp_path / "sft.yaml").read_text() == cli("recipes", "show", "sft").stdout


def test_shipped_recipe_name_resolves(cli):
    res = cli("train", "sft", "--recipe", "tiny/sft", "--print-config")
    assert res.exit_code == 0 and "tiny-llama" in res.stdout


def test_env_reports_versions_devices_and_offline_flags(cli):
    res = cli("env")
    assert res.exit_code == 0
    for key in ("torch", "transformers", "devices", "bitsandbytes backend", "HF_HUB_OFFLINE"):
        assert key in res.stdout
    assert "nf4 round-trip" in res.stdout or "not installed" in res.stdout


@pytest.mark.parametrize("command", ["say"])
def test_unbuilt_commands_refuse(cli, command):
    res = cli(command)
    assert res.exit_code == 2 and "not implemented yet" in res.stderr
