"""``mmthink train METHOD --dry-run`` on every shipped full recipe, and the recipes it must refuse."""

import json

import pytest

FULL = ["sft", "mirage", "thermometer", "bbpt", "edl", "fair", "vca"]


def _run(cli, method, *args):
    res = cli("train", method, "--recipe", f"recipes/{method}.yaml", "--dry-run", *args)
    return res, res.stdout + res.stderr


@pytest.mark.parametrize("method", FULL)
def test_every_full_recipe_passes_its_dry_run(cli, method):
    res, out = _run(cli, method)
    assert res.exit_code == 0, out
    assert out.startswith("dry run:") and "fits:" in out


def test_the_reports_give_real_sizes(cli):
    _, out = _run(cli, "mirage")
    assert "8,292,166,656 (7,615,616,512 trainable" in out  # Qwen2.5-VL-7B, the vision tower frozen
    assert "ids [151665, 151666, 151667]; 152,064 embedding rows" in out  # no resize: 151,665 < 152,064
    assert "latent decoding 4 latent steps" in out  # the latent op ran on the real widths
    _, out = _run(cli, "thermometer")
    assert "6,738,415,616 (inference only)" in out and "features (2, 4096)" in out


def test_satori_at_seven_billion_needs_zero3_and_fits_with_it(cli):
    res, out = _run(cli, "satori")
    assert res.exit_code == 2
    assert "RL (PPO) step needs about" in res.stderr and "--strategy zero3" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    res, out = _run(cli, "satori", "--gpus", "8", "--strategy", "zero3")
    assert res.exit_code == 0, out
    assert "7,070,622,721 parameters (the policy's body + a value head)" in out


def test_evoscale_at_thirty_two_billion_is_refused_on_one_gpu_and_fits_zero3_on_32(cli):
    res, out = _run(cli, "evoscale")
    assert res.exit_code == 2
    assert "RL step needs about" in res.stderr and "--strategy zero3" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    res, out = _run(cli, "evoscale", "--gpus", "32", "--strategy", "zero3")
    assert res.exit_code == 0, out
    assert "32,763,876,352 (32,763,876,352 trainable)" in out  # Qwen2.5-Coder-32B-Instruct
    assert "conditioning prompt (K = 5)" in out and "mutation-SFT loss" in out
    assert "fits: estimated peak" in out


def test_a_micro_batch_that_does_not_fit_is_refused_in_one_line(cli):
    res, _ = _run(cli, "mirage", "stage1.runner.micro_batch_size=8")
    assert res.exit_code == 2
    assert res.stderr.strip().startswith("mmthink: error: dry run: stage 1 needs about")
    assert len(res.stderr.strip().splitlines()) == 1


def test_a_wrong_mrope_section_fails_the_shape_check(cli, tmp_path):
    from mmthink.paths import assets_dir

    src = assets_dir() / "configs" / "Qwen--Qwen2.5-VL-7B-Instruct"
    config = json.loads((src / "config.json").read_text())
    config["rope_scaling"]["mrope_section"] = [16, 24, 16]  # sums to 56, not head_dim / 2 = 64
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "tokenizer_facts.json").write_text((src / "tokenizer_facts.json").read_text())
    res, _ = _run(cli, "mirage", f"model.name={tmp_path}")
    assert res.exit_code == 2
    assert "fails at the paper's widths" in res.stderr and "[16, 24, 16]" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_lora_on_a_module_the_model_lacks_is_refused(cli):
    res, _ = _run(cli, "sft", "model.lora.enabled=true", "model.lora.target_modules=[qkv_proj]")
    assert res.exit_code == 2
    assert "model.lora.target_modules" in res.stderr and "qkv_proj" in res.stderr


def test_lora_counts_only_the_adapters_as_trainable(cli):
    res, out = _run(cli, "sft", "model.lora.enabled=true")
    assert res.exit_code == 0, out
    line = next(ln for ln in out.splitlines() if "parameters" in ln)
    total, trainable = [int(x.replace(",", "")) for x in line.replace("(", " ").split() if x[0].isdigit()][:2]
    assert 0 < trainable < total / 50


@pytest.mark.parametrize("args, message", [(["--strategy", "zero9"], "--strategy must be one of"),
                                           (["--gpus", "0"], "--gpus must be >= 1"),
                                           (["--gpu-memory", "-1"], "--gpu-memory must be")])
def test_bad_targets_are_refused(cli, args, message):
    res, _ = _run(cli, "edl", *args)
    assert res.exit_code == 2 and message in res.stderr


def test_an_unbuilt_method_has_no_dry_run(cli):
    res = cli("train", "tango", "--recipe", "recipes/sft.yaml", "--dry-run")
    assert res.exit_code == 2


def test_the_strategy_defaults_to_the_accelerate_config(cli, monkeypatch):
    from mmthink.runner.dryrun import strategy_from_accelerate

    assert [strategy_from_accelerate(f"recipes/accelerate/{n}.yaml") for n in
            ("ddp", "fsdp", "deepspeed_zero2", "deepspeed_zero3")] == ["ddp", "fsdp", "zero2", "zero3"]
    monkeypatch.setenv("ACCELERATE_CONFIG_FILE", "recipes/accelerate/deepspeed_zero3.yaml")
    res, out = _run(cli, "satori", "--gpus", "8")
    assert res.exit_code == 0 and "8 x 80 GiB, ZeRO-3" in out


def test_calibrate_features_has_the_same_dry_run(cli):
    res = cli("calibrate", "features", "--recipe", "recipes/thermometer.yaml", "--dry-run")
    assert res.exit_code == 0, res.output
    assert "6,738,415,616 (inference only)" in res.stdout


def test_tango_needs_its_two_policies_sharded_and_fits_fsdp_on_8(cli):
    res, out = _run(cli, "tango")
    assert res.exit_code == 2 and "step needs about" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    res, out = _run(cli, "tango", "--gpus", "8", "--strategy", "zero3")
    assert res.exit_code == 2 and "--strategy fsdp" in res.stderr
    res, out = _run(cli, "tango", "--gpus", "8", "--strategy", "fsdp")
    assert res.exit_code == 0, out
    assert "generator parameters  7,615,616,512" in out and "verifier parameters   7,615,616,512" in out
    assert "verifier (resident) optimizer" in out and "format-tuning loss" in out and "fits: estimated peak" in out


def test_vca_through_an_endpoint_places_nothing_here(cli):
    res, out = _run(cli, "vca", "backend.kind=openai", "backend.endpoint=http://localhost:8000/v1")
    assert res.exit_code == 0, out
    assert "none here" in out and "26 frames" in out
