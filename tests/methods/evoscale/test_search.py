"""EvoScale's loop on a fake sampler whose 'model' improves what it is shown: selection, parents, budget,
curves, self-evolve and the baselines."""

import re

import pytest

from mmthink.methods.evoscale import search


def _problems(n=3):
    return [{"id": f"p{i}", "goal": 10 + i} for i in range(n)]


def prompt_of(p):
    return f"reach {p['goal']}"


def fake_sample(prompts, n, temperature, seed):
    """Without attempts: numbers 0..n-1 (offset by the seed); with attempts: the best shown + 1, + 2, ..."""
    out = []
    for prompt in prompts:
        shown = [int(x) for x in re.findall(r"Attempt \d+(?: \(score [\d.]+\))?:\n(\d+)", prompt)]
        base = max(shown) + 1 if shown else seed % 3
        out.append([str(base + j) for j in range(n)])
    return out


def fake_score(pairs):
    return [min(1.0, int(text) / p["goal"]) for p, text in pairs]


def test_each_iteration_conditions_on_the_top_k_of_the_last():
    cands = search.evolve(_problems(), prompt_of, fake_sample, fake_score, k=2, m=4, t=3, temperature=1.0, seed=0)
    assert len(cands) == 3 * 4 * 3  # problems x M x T
    p0 = [c for c in cands if c.problem == "p0"]
    assert [c.iteration for c in p0] == [0] * 4 + [1] * 4 + [2] * 4
    assert p0[0].parents == [] and set(p0[4].parents) == {"p0/evoscale/0/3", "p0/evoscale/0/2"}  # the two best
    assert [int(c.text) for c in p0[4:8]] == [4, 5, 6, 7]  # shown 3 and 2: the fake model starts at 3 + 1
    curve = search.best_so_far(cands)["p0"]
    assert curve == sorted(curve) and curve[-1] == pytest.approx(1.0)  # 11 of goal 10, capped


def test_curves_and_samples_to_reach_a_target():
    problems = _problems()
    evo = search.evolve(problems, prompt_of, fake_sample, fake_score, 2, 4, 3, 1.0, 0)
    # iteration 0 draws 0..3, then 4..7 (the best two were 3 and 2), then 8..11
    steps, reached = search.samples_to_reach(evo, 1.0)
    assert reached == pytest.approx(2 / 3) and steps == pytest.approx((11 + 12) / 2)  # goal 12 tops out at 11
    assert search.mean_curve(evo)[3] == pytest.approx((3 / 10 + 3 / 11 + 3 / 12) / 3)
    bon = search.best_of_n(problems, prompt_of, fake_sample, fake_score, 12, 1.0, 0)
    assert len(bon) == 3 * 12 and all(c.parents == [] for c in bon)
    # the fake draws 2..13 for its seed: goals 10, 11, 12 are reached at samples 9, 10, 11
    assert search.samples_to_reach(bon, 1.0) == (pytest.approx(10.0), pytest.approx(1.0))


def test_samples_to_a_mean_target_is_the_first_crossing_of_the_mean_curve():
    curve = [0.2, 0.5, 0.5, 0.7, 0.9]
    assert search.samples_to_mean(curve, 0.5) == 2 and search.samples_to_mean(curve, 0.6) == 4
    assert search.samples_to_mean(curve, 0.9) == 5 and search.samples_to_mean(curve, 0.95) is None
    bon = search.best_of_n(_problems(), prompt_of, fake_sample, fake_score, 12, 1.0, 0)
    curve = search.mean_curve(bon)
    assert search.samples_to_mean(curve, curve[6]) <= 7 and search.samples_to_mean(curve, 1.0) == 11


def test_self_evolve_picks_random_parents_and_answers_with_the_last_iteration():
    cands = search.evolve(_problems(1), prompt_of, fake_sample, fake_score, 2, 4, 3, 1.0, 0, rank=None)
    second = [c for c in cands if c.iteration == 1]
    assert len(second[0].parents) == 2
    final = search.final_answers(cands, ranked=False)["p0"]
    assert final.iteration == 2 and final.id.endswith("/2/0")
    best = search.final_answers(cands, ranked=True)["p0"]
    assert best.score == max(c.score for c in cands)
    assert search.per_iteration_mean(cands)[0] < search.per_iteration_mean(cands)[-1]


def test_greedy_is_one_sample_at_temperature_zero():
    seen = {}

    def sample(prompts, n, temperature, seed):
        seen.update(n=n, temperature=temperature)
        return fake_sample(prompts, n, temperature, seed)

    g = search.greedy(_problems(), prompt_of, sample, fake_score)
    assert len(g) == 3 and seen == {"n": 1, "temperature": 0.0}


def test_the_conditioning_prompt_shows_attempts_and_optionally_scores():
    text = search.conditioning_prompt("Task.", [("a" * 50, 0.5), ("b", 1.0)], show_scores=True, max_chars=10)
    assert text.startswith("Task.\n\nEarlier attempts:") and "Attempt 1 (score 0.50):\naaaaaaaaaa ..." in text
    assert "Attempt 2 (score 1.00):\nb" in text and text.endswith("Write an improved answer.")
    assert "score" not in search.conditioning_prompt("T", [("x", 0.2)], False, 10)


def test_a_ranker_chooses_parents_and_answers_and_the_report_reads_its_true_score():
    def worst_first(pairs):  # a reward model that has it backwards
        return [-s for s in fake_score(pairs)]

    cands = search.evolve(_problems(1), prompt_of, fake_sample, fake_score, 2, 4, 2, 1.0, 0, rank=worst_first)
    first, second = cands[:4], cands[4:]
    assert [c.rank for c in first] == [-c.score for c in first]
    assert set(second[0].parents) == {"p0/evoscale/0/0", "p0/evoscale/0/1"}  # the lowest two, 0 and 1
    assert [int(c.text) for c in second] == [2, 3, 4, 5]  # shown 0 and 1: the fake model goes on from 1
    final = search.final_answers(cands, ranked=True)["p0"]
    assert final.text == "0" and final.score == 0.0  # the ranker's pick, not the best there was
    assert search.selected_curve(cands) == [0.0] * 8
    assert search.mean_curve(cands)[-1] == pytest.approx(0.5)  # the oracle's best: 5 of goal 10
    bon = search.best_of_n(_problems(1), prompt_of, fake_sample, fake_score, 4, 1.0, 0, rank=worst_first)
    assert search.final_answers(bon, ranked=True)["p0"].text == "2"  # its draws are 2..5 for its seed
    plain = search.best_of_n(_problems(1), prompt_of, fake_sample, fake_score, 4, 1.0, 0)
    assert all(c.rank is None for c in plain) and search.selected_curve(plain) == search.mean_curve(plain)
