"""The launch files: accelerate configs in recipes/accelerate/ and SLURM scripts in scripts/slurm/.

The configs go through accelerate's own loader and ``accelerate launch``'s own argument validation
(nothing is launched); the sbatch scripts run under bash with fake ``accelerate`` / ``srun`` /
``scontrol`` / ``nvidia-smi`` executables that only print what they were given.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
ACCEL_DIR = ROOT / "recipes" / "accelerate"
SLURM_DIR = ROOT / "scripts" / "slurm"
SINGLE = SLURM_DIR / "single_node.sbatch"
MULTI = SLURM_DIR / "multi_node.sbatch"

EXPECTED_TYPE = {
    "ddp.yaml": "MULTI_GPU",
    "fsdp.yaml": "FSDP",
    "deepspeed_zero2.yaml": "DEEPSPEED",
    "deepspeed_zero3.yaml": "DEEPSPEED",
}
CONFIGS = sorted(ACCEL_DIR.glob("*.yaml"))
SCRIPTS = sorted(SLURM_DIR.glob("*.sbatch"))
NESTED = ("fsdp_config", "deepspeed_config")
# An mmthink command line with an argument holding a space: it must reach the launcher as one argument.
MMTHINK_ARGS = ["train", "sft", "--recipe", "recipes/sft.yaml", "optim.lr=1e-5", "output_dir=runs/my run"]


def _launch_args(config: Path, *extra: str):
    """Parse and validate like ``accelerate launch --config_file CONFIG EXTRA -m mmthink.cli train sft``."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser

    parser = launch_command_parser()
    args = parser.parse_args(["--config_file", str(config), *extra, "-m", "mmthink.cli", "train", "sft"])
    args, defaults, mp_from_config = _validate_launch_command(args)
    return parser, args, defaults, mp_from_config


def _launcher_env(args, defaults, mp_from_config) -> tuple[object, dict]:
    """The environment ``accelerate launch`` would give the training processes (what launch_command does)."""
    from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env

    if args.use_deepspeed:
        fields = list(defaults.deepspeed_config) + (["mixed_precision"] if mp_from_config else [])
        args.deepspeed_fields_from_accelerate_config = ",".join(fields)
        return prepare_deepspeed_cmd_env(args)
    return None, prepare_multi_gpu_env(args)


# --------------------------------------------------------------------------- accelerate configs


def test_every_config_is_known():
    assert {p.name for p in CONFIGS} == set(EXPECTED_TYPE)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_config_loads_with_accelerate(config):
    from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file
    from accelerate.utils import DistributedType

    raw = yaml.safe_load(config.read_text())
    # A bare `no` would be YAML false, which accelerate's launcher cannot lower-case.
    assert raw["mixed_precision"] == "no"
    loaded = load_config_from_file(str(config))  # raises on unknown top-level keys
    assert isinstance(loaded, ClusterConfig)
    assert loaded.distributed_type == DistributedType[EXPECTED_TYPE[config.name]]
    assert (loaded.num_processes, loaded.num_machines) == (8, 1)

    header = config.read_text().split("\ncompute_environment:")[0]
    assert f"accelerate launch --config_file recipes/accelerate/{config.name} -m mmthink.cli train" in header
    assert "num_processes" in header and "num_machines" in header and "SLURM" in header


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_config_keys_reach_accelerate_launch(config):
    """No dead keys: each one is an `accelerate launch` option and ends up with the file's value."""
    raw = yaml.safe_load(config.read_text())
    parser, args, _, _ = _launch_args(config)
    options = {action.dest for action in parser._actions}
    for section in NESTED:
        for key, value in raw.get(section, {}).items():
            assert key in options, f"{config.name}: {section}.{key} is not an `accelerate launch` option"
            assert getattr(args, key) == value, f"{config.name}: {section}.{key}"
    for key, value in raw.items():
        if key in NESTED or key in ("compute_environment", "distributed_type"):
            continue
        assert getattr(args, key) == value, f"{config.name}: {key}"
    kind = EXPECTED_TYPE[config.name]
    assert (args.multi_gpu, args.use_fsdp, args.use_deepspeed) == (
        kind == "MULTI_GPU",
        kind == "FSDP",
        kind == "DEEPSPEED",
    )


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_command_line_overrides_config_for_multi_node(config):
    """What multi_node.sbatch passes on the second node wins over the file's single-node defaults."""
    extra = ["--num_processes", "16", "--num_machines", "2", "--machine_rank", "1"]
    extra += ["--main_process_ip", "10.1.2.3", "--main_process_port", "29555"]
    _, args, defaults, mp_from_config = _launch_args(config, *extra)
    cmd, env = _launcher_env(args, defaults, mp_from_config)
    assert cmd is None  # torchrun on this node: DeepSpeed's pdsh/ssh launcher is not used
    assert (args.nproc_per_node, args.nnodes, args.node_rank) == ("8", "2", 1)
    assert env["ACCELERATE_MIXED_PRECISION"] == "no"


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_plugins_built_from_launcher_env(config, monkeypatch):
    """The training process builds its FSDP / DeepSpeed plugin from the launcher's environment."""
    from accelerate.utils import DeepSpeedPlugin, FullyShardedDataParallelPlugin

    _, args, defaults, mp_from_config = _launch_args(config, "--num_processes", "2")
    _, env = _launcher_env(args, defaults, mp_from_config)
    for key, value in env.items():
        if key.startswith(("ACCELERATE_", "FSDP_")):
            monkeypatch.setenv(key, value)

    if config.name == "fsdp.yaml":
        from torch.distributed.fsdp import StateDictType
        from torch.distributed.fsdp.wrap import transformer_auto_wrap_policy

        plugin = FullyShardedDataParallelPlugin()
        assert plugin.fsdp_version == 2
        assert plugin.reshard_after_forward is True  # FSDP2 full shard
        assert plugin.auto_wrap_policy is transformer_auto_wrap_policy
        assert plugin.transformer_cls_names_to_wrap is None  # taken from the model's _no_split_modules
        assert plugin.state_dict_type == StateDictType.SHARDED_STATE_DICT
    elif config.name.startswith("deepspeed_"):
        plugin = DeepSpeedPlugin()
        zero = plugin.deepspeed_config["zero_optimization"]
        stage = 3 if "zero3" in config.name else 2
        assert zero["stage"] == stage
        assert plugin.zero3_init_flag is (stage == 3)
        if stage == 3:  # accelerator.get_state_dict raises without it
            assert zero["stage3_gather_16bit_weights_on_model_save"] is True
        assert plugin.deepspeed_config["gradient_accumulation_steps"] == 1
    else:
        assert env.get("ACCELERATE_USE_FSDP") is None and env.get("ACCELERATE_USE_DEEPSPEED") is None


def test_recipe_mixed_precision_wins_over_launcher():
    """What the configs' comments promise: the recipe's runner.mixed_precision, not the launcher's."""
    from accelerate.state import AcceleratorState

    from mmthink.runner.config import RunnerConfig
    from mmthink.runner.loop import make_accelerator

    saved = os.environ.get("ACCELERATE_MIXED_PRECISION")
    AcceleratorState._reset_state(reset_partial_state=True)
    try:
        for launcher, recipe in (("fp16", "no"), ("no", "bf16")):
            os.environ["ACCELERATE_MIXED_PRECISION"] = launcher
            assert make_accelerator(RunnerConfig(mixed_precision=recipe)).mixed_precision == recipe
            AcceleratorState._reset_state(reset_partial_state=True)
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)
        if saved is None:
            os.environ.pop("ACCELERATE_MIXED_PRECISION", None)
        else:
            os.environ["ACCELERATE_MIXED_PRECISION"] = saved


# --------------------------------------------------------------------------- SLURM scripts


def test_every_script_is_known():
    assert set(SCRIPTS) == {SINGLE, MULTI}


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_script_syntax_and_content(script):
    subprocess.run(["bash", "-n", str(script)], check=True, capture_output=True)
    text = script.read_text()
    assert "accelerate launch" in text and "-m mmthink.cli" in text
    assert '"$@"' in text
    lines = text.splitlines()
    assert lines[0] == "#!/bin/bash"
    # sbatch stops reading #SBATCH lines at the first command, so they must all come before it.
    first_command = next(i for i, line in enumerate(lines) if line.strip() and not line.startswith("#"))
    sbatch = [line for line in lines[:first_command] if line.startswith("#SBATCH")]
    assert not any(line.startswith("#SBATCH") for line in lines[first_command:])
    assert "#SBATCH --output=logs/%x-%j.out" in sbatch
    assert "#SBATCH --gpus-per-node=8" in sbatch
    nodes = "#SBATCH --nodes=1" if script == SINGLE else "#SBATCH --nodes=2"
    assert nodes in sbatch and "#SBATCH --ntasks-per-node=1" in sbatch
    assert any(line.startswith("#SBATCH --time=") for line in sbatch)
    assert any(line.startswith("#SBATCH --cpus-per-task=") for line in sbatch)


def _exe(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/usr/bin/env bash\n" + body)
    path.chmod(0o755)
    return path


FAKE_ACCELERATE = """\
echo "FAKE-ACCELERATE ${FAKE_TAG:-path} pwd=$(pwd)"
printf 'ARG:%s\\n' "$@"
for v in HF_HUB_OFFLINE HF_DATASETS_OFFLINE TRANSFORMERS_OFFLINE; do
    if [[ -n "${!v:-}" ]]; then echo "ENV:$v=${!v}"; fi
done
"""


@pytest.fixture
def fakebin(tmp_path):
    bin_dir = tmp_path / "bin"
    _exe(bin_dir / "accelerate", FAKE_ACCELERATE)
    return bin_dir


def _env(fakebin: Path, tmp_path: Path, **extra: str) -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLURM_", "HF_", "MMTHINK_", "ACCELERATE_"))
        and k not in ("TRANSFORMERS_OFFLINE", "GPUS_PER_NODE", "ACCEL_CONFIG", "VIRTUAL_ENV", "MASTER_ADDR", "MASTER_PORT")
    }
    env["PATH"] = f"{fakebin}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}"
    env["MMTHINK_VENV"] = str(tmp_path / "no-venv")  # the repository's .venv would put the real accelerate first
    env["SLURM_SUBMIT_DIR"] = str(ROOT)
    env.update(extra)
    return env


def _run(script: Path, env: dict, tmp_path: Path, args=MMTHINK_ARGS) -> subprocess.CompletedProcess:
    # Started from elsewhere: the script must move to SLURM_SUBMIT_DIR for the relative config paths.
    return subprocess.run(
        ["bash", str(script), *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=30
    )


def _launches(stdout: str) -> list[dict]:
    """One entry per fake ``accelerate`` run: its tag, working directory, argv and offline variables."""
    runs = []
    for line in stdout.splitlines():
        if line.startswith("FAKE-ACCELERATE "):
            tag, pwd = line.split()[1:3]
            runs.append({"tag": tag, "pwd": pwd[len("pwd=") :], "argv": [], "env": {}})
        elif line.startswith("ARG:"):
            runs[-1]["argv"].append(line[4:])
        elif line.startswith("ENV:"):
            key, value = line[4:].split("=", 1)
            runs[-1]["env"][key] = value
    return runs


def test_single_node_launch_command(fakebin, tmp_path):
    proc = _run(SINGLE, _env(fakebin, tmp_path, SLURM_GPUS_ON_NODE="2"), tmp_path)
    assert proc.returncode == 0, proc.stderr
    (run,) = _launches(proc.stdout)
    assert run["tag"] == "path" and Path(run["pwd"]) == ROOT
    assert run["argv"] == [
        "launch", "--config_file", "recipes/accelerate/ddp.yaml", "--num_processes", "2", "--num_machines", "1",
        "-m", "mmthink.cli", *MMTHINK_ARGS,
    ]  # fmt: skip
    assert run["env"] == {}  # the hub stays reachable unless MMTHINK_OFFLINE=1
    assert "--num_processes 2" in proc.stderr  # the command is logged


def test_single_node_config_offline_and_nvidia_smi(fakebin, tmp_path):
    _exe(fakebin / "nvidia-smi", 'if [[ "$1" == --list-gpus ]]; then for i in 0 1 2; do echo "GPU $i: H100 (UUID: x)"; done; fi\n')
    env = _env(fakebin, tmp_path, ACCEL_CONFIG="recipes/accelerate/fsdp.yaml", MMTHINK_OFFLINE="1")
    proc = _run(SINGLE, env, tmp_path)
    assert proc.returncode == 0, proc.stderr
    (run,) = _launches(proc.stdout)
    argv = run["argv"]
    assert argv[argv.index("--config_file") + 1] == "recipes/accelerate/fsdp.yaml"
    assert argv[argv.index("--num_processes") + 1] == "3"
    assert run["env"] == {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def test_single_node_activates_venv(fakebin, tmp_path):
    venv = tmp_path / "venv"
    _exe(venv / "bin" / "accelerate", FAKE_ACCELERATE.replace("${FAKE_TAG:-path}", "venv"))
    (venv / "bin" / "activate").write_text(f'export VIRTUAL_ENV="{venv}"\nexport PATH="{venv}/bin:$PATH"\n')
    proc = _run(SINGLE, _env(fakebin, tmp_path, SLURM_GPUS_ON_NODE="2", MMTHINK_VENV=str(venv)), tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert [r["tag"] for r in _launches(proc.stdout)] == ["venv"]
    # An environment that is already active is kept.
    env = _env(fakebin, tmp_path, SLURM_GPUS_ON_NODE="2", MMTHINK_VENV=str(venv), VIRTUAL_ENV="/somewhere")
    assert [r["tag"] for r in _launches(_run(SINGLE, env, tmp_path).stdout)] == ["path"]


@pytest.mark.parametrize(
    "extra, args, message",
    [
        ({"SLURM_GPUS_ON_NODE": "2"}, [], "usage"),
        ({"GPUS_PER_NODE": "0"}, MMTHINK_ARGS, "GPUS_PER_NODE"),
        ({"SLURM_GPUS_ON_NODE": "2", "ACCEL_CONFIG": "recipes/accelerate/nope.yaml"}, MMTHINK_ARGS, "nope.yaml"),
    ],
    ids=["no-args", "no-gpus", "missing-config"],
)
def test_single_node_refuses(fakebin, tmp_path, extra, args, message):
    proc = _run(SINGLE, _env(fakebin, tmp_path, **extra), tmp_path, args)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert _launches(proc.stdout) == []


def test_multi_node_ranks_expand_on_each_node(fakebin, tmp_path):
    _exe(fakebin / "scontrol", 'if [[ "$1 $2" == "show hostnames" ]]; then printf "gpu-a\\ngpu-b\\n"; fi\n')
    # Like srun: run the command once per node, with that node's SLURM_NODEID.
    _exe(
        fakebin / "srun",
        'opts=()\nwhile [[ "$1" == -* ]]; do opts+=("$1"); shift; done\necho "SRUN:${opts[*]}"\n'
        'for ((i = 0; i < SLURM_NNODES; i++)); do SLURM_NODEID=$i "$@"; done\n',
    )
    env = _env(
        fakebin, tmp_path, SLURM_JOB_NODELIST="gpu-[a-b]", SLURM_NNODES="2", SLURM_NODEID="0",
        SLURM_JOB_ID="12345", SLURM_GPUS_ON_NODE="4", SLURM_CPUS_PER_TASK="16",
    )  # fmt: skip
    proc = _run(MULTI, env, tmp_path)
    assert proc.returncode == 0, proc.stderr
    runs = _launches(proc.stdout)
    assert len(runs) == 2
    for rank, run in enumerate(runs):
        assert Path(run["pwd"]) == ROOT
        assert run["argv"] == [
            "launch", "--config_file", "recipes/accelerate/ddp.yaml",
            "--num_processes", "8", "--num_machines", "2", "--machine_rank", str(rank),
            "--main_process_ip", "gpu-a", "--main_process_port", str(10000 + 12345 % 20000),
            "-m", "mmthink.cli", *MMTHINK_ARGS,
        ]  # fmt: skip
    srun_opts = re.search(r"^SRUN:(.*)$", proc.stdout, re.M).group(1).split()
    assert "--nodes=2" in srun_opts and "--ntasks-per-node=1" in srun_opts and "--cpus-per-task=16" in srun_opts


def test_multi_node_survives_a_long_host_list(fakebin, tmp_path):
    # `scontrol | head -n1` under pipefail died of SIGPIPE (exit 141) when scontrol still had output.
    _exe(fakebin / "scontrol", 'for ((i = 0; i < 20000; i++)); do echo "gpu-$i"; done\n')
    _exe(fakebin / "srun", 'while [[ "$1" == -* ]]; do shift; done\nSLURM_NODEID=0 "$@"\n')
    env = _env(fakebin, tmp_path, SLURM_JOB_NODELIST="gpu-[0-19999]", SLURM_NNODES="1", SLURM_GPUS_ON_NODE="1")
    proc = _run(MULTI, env, tmp_path)
    assert proc.returncode == 0, proc.stderr
    (run,) = _launches(proc.stdout)
    assert run["argv"][run["argv"].index("--main_process_ip") + 1] == "gpu-0"


def test_multi_node_refuses_an_empty_host_list(fakebin, tmp_path):
    _exe(fakebin / "scontrol", "true\n")
    env = _env(fakebin, tmp_path, SLURM_JOB_NODELIST="gpu-[a-b]", SLURM_NNODES="2", SLURM_GPUS_ON_NODE="1")
    proc = _run(MULTI, env, tmp_path)
    assert proc.returncode == 2
    assert "no hosts" in proc.stderr
    assert _launches(proc.stdout) == []
