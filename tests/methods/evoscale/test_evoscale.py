"""eval evoscale end to end on a tiny model: the files it writes and what they hold; the code scorer."""

import json

import pytest

from mmthink.methods.evoscale.tasks import prompt_of, scorer
from mmthink.tasks.code import humaneval


def test_eval_writes_every_candidate_and_the_curves(tmp_path, cli):
    assert cli("data", "digits", "--out", tmp_path / "d", "--train", 2, "--test", 3).exit_code == 0
    res = cli("eval", "evoscale", "--checkpoint", "tiny-llama", "--data", tmp_path / "d" / "test.jsonl",
              "--recipe", "recipes/tiny/evoscale.yaml", "--out", tmp_path / "out", "evo.k=1", "evo.m=2", "evo.t=2",
              "sampler.max_new_tokens=4", "eval.limit=null")
    assert res.exit_code == 0, res.stderr
    report = json.loads((tmp_path / "out" / "eval.json").read_text())
    assert report["budget"] == 4 and report["n_problems"] == 3
    assert set(report["evoscale"]["best_at"]) == {"1", "2", "4"}
    assert len(report["evoscale"]["iteration_mean_score"]) == 2
    rows = [json.loads(line) for line in (tmp_path / "out" / "candidates.jsonl").read_text().splitlines()]
    by = {m: [r for r in rows if r["method"] == m] for m in ("evoscale", "best_of_n", "greedy")}
    assert [len(v) for v in by.values()] == [3 * 4, 3 * 4, 3]
    second = [r for r in by["evoscale"] if r["iteration"] == 1]
    assert all(len(r["parents"]) == 1 for r in second)
    assert all(0.0 <= r["score"] <= 1.0 for r in rows)


def test_selection_by_a_reward_model_or_by_the_model_itself(tmp_path, cli, tiny_reward_model):
    from mmthink.methods.evoscale.tasks import prompt_of
    from mmthink.models.reward import OutcomeRewardModel

    assert cli("data", "digits", "--out", tmp_path / "d", "--train", 1, "--test", 2).exit_code == 0
    common = ("eval", "evoscale", "--checkpoint", "tiny-llama", "--data", tmp_path / "d" / "test.jsonl",
              "--recipe", "recipes/tiny/evoscale.yaml", "evo.k=1", "evo.m=3", "evo.t=2", "sampler.max_new_tokens=4",
              "eval.limit=null", "eval.baselines=[best_of_n]")
    for name, extra in (("reward_model", [f"evo.reward_model={tiny_reward_model}"]), ("self", [])):
        res = cli(*common, "--out", tmp_path / name, f"evo.scorer={name}", *extra)
        assert res.exit_code == 0, res.stderr
        report = json.loads((tmp_path / name / "eval.json").read_text())
        assert report["scorer"] == name and set(report["evoscale"]["selected_at"]) == {"1", "3", "6"}
        rows = [json.loads(line) for line in (tmp_path / name / "candidates.jsonl").read_text().splitlines()]
        evo = [r for r in rows if r["method"] == "evoscale"]
        assert all(r["rank"] is not None for r in rows) and all(0.0 <= r["score"] <= 1.0 for r in rows)
        for problem in {r["problem"] for r in evo}:
            mine = [r for r in evo if r["problem"] == problem]
            best = max(mine[:3], key=lambda r: r["rank"])  # the parent is iteration 0's top by rank
            assert mine[3]["parents"] == [best["id"]]
        if name == "self":
            assert all(0.0 < r["rank"] < 1.0 for r in rows)
        else:  # the ranks are the reward model's scores of (prompt, candidate)
            problems = {json.loads(line)["id"]: json.loads(line)
                        for line in (tmp_path / "d" / "test.jsonl").read_text().splitlines()}
            rm = OutcomeRewardModel(str(tiny_reward_model), "cpu")
            r0 = evo[0]
            assert rm.score_pairs([prompt_of(problems[r0["problem"]])], [r0["text"]])[0] == pytest.approx(r0["rank"],
                                                                                                        abs=1e-4)


def test_bad_evoscale_settings_name_the_key(tmp_path, cli):
    assert cli("data", "digits", "--out", tmp_path / "d", "--train", 1, "--test", 1).exit_code == 0
    for override, key in (("evo.k=9", "evo.k"), ("evo.scorer=judge", "evo.scorer"), ("sampler.top_p=0", "sampler.top_p")):
        res = cli("eval", "evoscale", "--checkpoint", "tiny-llama", "--data", tmp_path / "d" / "test.jsonl",
                  "--recipe", "recipes/tiny/evoscale.yaml", "--out", tmp_path / "o", override)
        assert res.exit_code == 2 and key in res.stderr, res.stderr
    base = ("eval", "evoscale", "--checkpoint", "tiny-llama", "--data", tmp_path / "d" / "test.jsonl", "--recipe",
            "recipes/tiny/evoscale.yaml", "--out", tmp_path / "o2")
    res = cli(*base, "evo.scorer=reward_model")
    assert res.exit_code == 2 and "evo.reward_model" in res.stderr and "required" in res.stderr, res.stderr
    res = cli(*base, "evo.scorer=reward_model", f"evo.reward_model={tmp_path / 'no_rm'}")
    assert res.exit_code == 2 and "evo.reward_model" in res.stderr and "cannot be loaded" in res.stderr
    assert "Traceback" not in res.stderr and not (tmp_path / "o2" / "eval.json").exists()
    res = cli(*base, "evo.scorer=self", "sampler.endpoint=http://127.0.0.1:9")
    assert res.exit_code == 2 and "evo.scorer" in res.stderr and "local decoding" in res.stderr
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x", "question": "?"}\n')
    res = cli("eval", "evoscale", "--checkpoint", "tiny-llama", "--data", bad, "--recipe", "recipes/tiny/evoscale.yaml")
    assert res.exit_code == 2 and "neither a digits problem" in res.stderr


def test_code_answers_are_graded_in_the_sandbox():
    problem = humaneval(task_ids=["HumanEval/2"])[0]
    score = scorer(10.0)
    good = f"Here you go:\n```python\n{problem['prompt']}{problem['canonical_solution']}```"
    bad = "```python\ndef truncate_number(number: float) -> float:\n    return 0.0\n```"
    assert score([(problem, good), (problem, bad)]) == [1.0, 0.0]
    assert "```python" in prompt_of(problem)
