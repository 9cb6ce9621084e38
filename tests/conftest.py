import os

# No hub is reachable here or in CI: fail at once instead of retrying for a minute.
for _var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ[_var] = "1"
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path  # noqa: E402

import transformers  # noqa: E402

# transformers' own handler binds the stderr of whichever CliRunner call logs first and later writes
# to it after it is closed; route its records through the root logger (which pytest captures).
transformers.utils.logging.disable_default_handler()
transformers.utils.logging.enable_propagation()

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _repo_root(monkeypatch):
    # Shipped recipes name data relative to the repository root.
    monkeypatch.chdir(ROOT)


@pytest.fixture
def cli():
    """Run the CLI in-process; returns a click Result with exit_code, stdout and stderr."""
    from typer.testing import CliRunner

    from mmthink.cli import app

    runner = CliRunner()
    return lambda *args: runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def one_thread():
    """Torch on one thread for the test: small models only lose to thread contention on a busy machine."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def tiny_reward_model(tmp_path_factory):
    """A saved tiny-llama sequence classifier (one label, seeded random head) with the tiny tokenizer: a
    reward model to load by path."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from mmthink.models.presets import tiny_config
    from mmthink.models.tokenizer import load_tiny_tokenizer

    tok = load_tiny_tokenizer()
    config = tiny_config("tiny-llama", tok)
    config.num_labels = 1
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = AutoModelForSequenceClassification.from_config(config)
    out = tmp_path_factory.mktemp("reward_model")
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out
