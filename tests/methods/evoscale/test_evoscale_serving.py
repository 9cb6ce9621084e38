"""EvoScale mode of the server, method side: the loop on one request's task, graded by its tests."""

import re

import pytest

from mmthink.config import load_recipe
from mmthink.methods.evoscale.config import EvoScaleRecipe
from mmthink.methods.evoscale.serving import BadSetting, EvoScaleMode, load

TESTS = "assert x >= 2\nassert x >= 4\nassert x >= 6\nassert x >= 8"


def _mode(**evo):
    cfg = load_recipe("recipes/tiny/evoscale.yaml", [f"evo.{k}={v}" for k, v in evo.items()], EvoScaleRecipe)
    return EvoScaleMode(cfg)


def fake_sample(prompts, n, temperature, seed):
    """x = one more than the largest x shown in the prompt (0 on the first iteration), then + j."""
    out = []
    for p in prompts:
        shown = [int(v) for v in re.findall(r"x = (\d+)", p)]
        start = max(shown) + 1 if shown else 0
        out.append([f"Here:\n```python\nx = {start + j}\n```" for j in range(n)])
    return out


def test_with_tests_the_answer_is_the_best_graded_candidate():
    mode = _mode(k=2, m=3, t=3)
    s = mode.settings(tests=TESTS)
    r = mode.run("Set x.", fake_sample, s, 1.0, 0)
    ev = r["evoscale"]
    # iteration 0: x = 0, 1, 2; then the top 2 (2, 1) are shown: x = 3, 4, 5; then 6, 7, 8
    assert ev["samples"] == 9 and ev["scorer"] == "tests"
    assert ev["iteration_best_score"] == pytest.approx([0.25, 0.5, 1.0])
    assert ev["iteration_mean_score"] == pytest.approx([1 / 12, 5 / 12, 10 / 12])
    assert "x = 8" in r["text"] and ev["answer"] == {"iteration": 2, "index": 2, "score": 1.0}


def test_without_tests_it_self_evolves_and_answers_with_the_last_iterations_first_sample():
    mode = _mode(k=2, m=3, t=2)
    r = mode.run("Set x.", fake_sample, mode.settings(), 1.0, 0)
    assert r["evoscale"]["scorer"] == "none" and "iteration_mean_score" not in r["evoscale"]
    assert r["evoscale"]["answer"] == {"iteration": 1, "index": 0}
    assert re.search(r"x = [2-3]\b", r["text"])  # one more than the largest of a random 2 of {0, 1, 2}


def test_request_settings_override_the_recipe_and_bad_ones_name_the_field():
    mode = _mode(k=3, m=8, t=4)
    s = mode.settings(m=5, t=2)
    assert (s.k, s.m, s.t) == (3, 5, 2)
    with pytest.raises(BadSetting, match="k=6") as e:
        mode.settings(k=6, m=5)
    assert e.value.param == "evoscale.k"
    with pytest.raises(BadSetting, match="no assert"):
        mode.settings(tests="print(1)")
    with pytest.raises(BadSetting, match="do not parse") as e:
        mode.settings(tests="assert (")
    assert e.value.param == "evoscale.tests"


def test_load_reads_a_run_s_resolved_recipe(tmp_path):
    from mmthink.config import to_yaml

    cfg = load_recipe("recipes/tiny/evoscale.yaml", ["evo.m=6"], EvoScaleRecipe)
    (tmp_path / "resolved_config.yaml").write_text(to_yaml(cfg))
    assert load(str(tmp_path / "resolved_config.yaml")).cfg.evo.m == 6
