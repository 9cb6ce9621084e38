"""`mmthink train bbpt` and `mmthink eval bbpt` through the CLI on tiny-llama and a toy task folder."""
import json

import pytest
from safetensors.torch import load_file

SMALL = ["logging.progress=none", "cma.iters=2", "cma.members=2", "cma.popsize=4", "elbo.iters=2", "elbo.popsize=4",
         "elbo.n_samples=3", "abc.popsize=4", "abc.n_particles=2", "abc.max_rounds=2", "prompt_tuning.steps=2"]


@pytest.mark.parametrize("algorithm, extra, n_prompts", [
    ("cma_ensemble", [], 2),
    ("cma_elbo", [], 3),
    ("abc_smc", ["box.level=labels"], 2),
    ("snpe", [], 4),
    ("prompt_tuning", [], 0),
    ("zero_shot", [], 0),
])
def test_train_then_eval_reproduces_the_metrics(cli, tmp_path, task_dir, algorithm, extra, n_prompts):
    out = tmp_path / "run"
    res = cli("train", "bbpt", "--recipe", "tiny/bbpt", f"task={task_dir}", f"algorithm={algorithm}",
              f"output_dir={out}", *SMALL, *extra)
    assert res.exit_code == 0, res.stderr
    model = out / "model"
    meta = json.loads((model / "bbpt.json").read_text())
    assert meta["algorithm"] == algorithm and meta["n_prompts"] == n_prompts
    trained = json.loads((model / "eval.json").read_text())
    assert trained["n_test"] == 12 and 0 <= trained["accuracy"] <= 1
    assert (trained["train_queries"] > 0) == (algorithm not in ("prompt_tuning", "zero_shot"))
    if n_prompts:
        t = load_file(str(model / "prompts.safetensors"))
        assert t["prompts"].shape == (n_prompts, 4, 256) and t["weights"].sum() == pytest.approx(1.0)
    if algorithm == "prompt_tuning":
        assert (model / "prompt_tuning" / "adapter_model.safetensors").is_file()
    res = cli("eval", "bbpt", "--checkpoint", str(model), "--data", str(task_dir), "--out", str(tmp_path / "ev"))
    assert res.exit_code == 0, res.stderr
    again = json.loads((tmp_path / "ev" / "eval.json").read_text())
    trained.pop("train_queries")
    assert again == trained  # the same black box answers the same prompts the same way


def test_ood_set_is_scored(cli, tmp_path, task_dir):
    out = tmp_path / "run"
    res = cli("train", "bbpt", "--recipe", "tiny/bbpt", f"task={task_dir}", "algorithm=zero_shot",
              f"eval.ood={task_dir}", f"output_dir={out}", *SMALL)
    assert res.exit_code == 0, res.stderr
    m = json.loads((out / "model" / "eval.json").read_text())
    assert 0 <= m["ood_auroc/entropy"] <= 1 and m["eval_queries"] == 24


@pytest.mark.parametrize("overrides, message", [
    (["box.level=labels"], "needs box.level=logits"),
    (["task=no-such-task"], "unknown text classification task"),
    (["algorithm=gradient_descent"], "algorithm"),
    (["box.verbalizer=[bad]"], "box.verbalizer has 1 words"),
])
def test_user_errors_exit_2_and_write_nothing(cli, tmp_path, task_dir, overrides, message):
    out = tmp_path / "bad"
    res = cli("train", "bbpt", "--recipe", "tiny/bbpt", f"task={task_dir}", f"output_dir={out}", *SMALL, *overrides)
    assert res.exit_code == 2 and message in res.stderr and "Traceback" not in res.stderr
    assert not out.exists()


def test_eval_of_a_folder_that_is_no_bbpt_run(cli, tmp_path, task_dir):
    res = cli("eval", "bbpt", "--checkpoint", str(tmp_path), "--data", str(task_dir))
    assert res.exit_code == 2 and "bbpt.json" in res.stderr


def test_more_than_one_process_is_refused():
    from mmthink.errors import UserError
    from mmthink.methods.bbpt.config import BBPTRecipe

    BBPTRecipe().check(1)
    with pytest.raises(UserError, match="one process"):
        BBPTRecipe().check(2)


def test_a_rerun_resumes_the_search_and_a_changed_one_is_refused(cli, tmp_path, task_dir):
    out = tmp_path / "run"
    args = ("train", "bbpt", "--recipe", "tiny/bbpt", f"task={task_dir}", "algorithm=cma_elbo", f"output_dir={out}",
            *SMALL)
    assert cli(*args).exit_code == 0
    first = json.loads((out / "model" / "eval.json").read_text())
    assert (out / "checkpoints" / "search" / "state.pkl").is_file()
    res = cli(*args)  # the finished search is read back, not searched again: no training query spent twice
    assert res.exit_code == 0 and "resumed the search" in res.stderr and "after generation 2" in res.stderr
    assert json.loads((out / "model" / "eval.json").read_text()) == first
    res = cli(*args, "elbo.popsize=6")
    assert res.exit_code == 2 and "elbo.popsize: 4 there, 6 now" in res.stderr
    assert " resume_allow_changes=[elbo.popsize]" in res.stderr and " resume=never" in res.stderr  # top-level keys
    res = cli(*args, "elbo.popsize=6", "resume=never")
    assert res.exit_code == 0 and "resumed" not in res.stderr
