"""The prepared GPU check runs end to end with tiny shapes on the CPU, so that it cannot rot."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_dry_run_writes_every_part(tmp_path):
    out = tmp_path / "gpu_check.json"
    res = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu" / "check.sh"), "--dry-run", "--out", str(out)],
                         cwd=ROOT, capture_output=True, text=True, timeout=600, env={"PATH": "/usr/bin:/bin",
                                                                                     "PYTHON": sys.executable})
    assert res.returncode == 0, res.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["dry_run"] is True and report["device"] == "cpu"
    parts = report["parts"]
    assert list(parts) == ["mirage_stage1", "latent_decode", "qlora_step", "sft_smollm2", "rl_smollm2", "tango_smollm2",
                           "serve_smollm2", "vca_tiny", "pytest_gpu"]
    assert all(p["status"] in ("ok", "skipped") for p in parts.values()), parts
    assert parts["mirage_stage1"]["tokens_per_s"] > 0 and parts["mirage_stage1"]["loss"] > 0
    assert parts["latent_decode"]["latent_tokens_per_s"] > 0 and parts["latent_decode"]["hf_generate_tokens_per_s"] > 0
    assert parts["sft_smollm2"]["target_tokens_per_s"] > 0
    assert parts["tango_smollm2"]["median_step_s"] > 0
    assert parts["serve_smollm2"]["ratio_requests_per_s"] > 0
    assert parts["vca_tiny"]["calls"] >= 2 and parts["vca_tiny"]["frames_used"] <= 20


def test_the_wheel_list_names_what_the_gpu_machine_lacks():
    listed = [line.split("==")[0] for line in (ROOT / "benchmarks" / "gpu" / "wheels.txt").read_text().splitlines()
              if line and not line.startswith("#")]
    assert {"transformers", "omegaconf", "bitsandbytes", "math-verify", "gguf", "cma"} <= set(listed)
