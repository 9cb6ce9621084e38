"""eval evoscale end to end on a tiny model: the files it writes and what they hold; the code scorer."""

import json

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


def test_bad_evoscale_settings_name_the_key(tmp_path, cli):
    assert cli("data", "digits", "--out", tmp_path / "d", "--train", 1, "--test", 1).exit_code == 0
    for override, key in (("evo.k=9", "evo.k"), ("evo.scorer=judge", "evo.scorer"), ("sampler.top_p=0", "sampler.top_p")):
        res = cli("eval", "evoscale", "--checkpoint", "tiny-llama", "--data", tmp_path / "d" / "test.jsonl",
                  "--recipe", "recipes/tiny/evoscale.yaml", "--out", tmp_path / "o", override)
        assert res.exit_code == 2 and key in res.stderr, res.stderr
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
