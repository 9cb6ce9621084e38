"""Golden tests of Tango's numerics: process-reward placement, the α schedule, the mixed advantage, the
verifier reward, the class weights; and the step-labelled corruption."""

import math
import random

import pytest
import torch

from mmthink.methods.tango import rewards as R
from mmthink.methods.tango.data import corrupt, format_rows, step_labelled
from mmthink.methods.tango.formats import step_spans
from mmthink.tasks import math as math_task


class CharTok:
    """A tokenizer whose tokens are fixed chunks of text, to place rewards by hand."""

    def __init__(self, chunks):
        self.chunks = chunks

    def decode(self, ids, skip_special_tokens=True):
        return "".join(self.chunks[i] for i in ids)


def test_process_rewards_sit_on_the_token_that_ends_each_step():
    chunks = ["<think>\n", "<step>", "2 + 2 = 4.", "</step>", "\n", "<step>", "4 * 3 = 12.", "</st", "ep>", "\n",
              "</think>", "<answer>\\boxed{12}</answer>"]
    tok = CharTok(chunks)
    text = "".join(chunks)
    ends = R.token_char_ends(tok, list(range(len(chunks))))
    assert ends[-1] == len(text)
    tokens = R.step_end_tokens(step_spans(text), ends)
    assert tokens == [3, 8]  # "</step>" and "ep>": the tokens holding each step's last character
    r = R.process_rewards([True, False], 2, tokens, len(chunks))
    assert r[3] == 0.5 and r[8] == -0.5 and sum(abs(x) for x in r) == 1.0
    assert R.process_rewards([True], 2, tokens, len(chunks)) is None  # count mismatch: no process reward
    assert R.process_rewards([], 0, [], len(chunks)) is None


def test_the_alpha_schedules():
    assert R.alpha_at(0, 300) == pytest.approx(0.1)
    assert R.alpha_at(300, 300) == pytest.approx(1e-3)
    assert R.alpha_at(150, 300) == pytest.approx(0.1 * math.exp(-math.log(100) / 2))  # = 0.01
    assert R.alpha_at(150, 300, target_frac=0.5) == pytest.approx(1e-3)
    assert R.alpha_at(500, 300) == 1e-3  # floored
    assert R.alpha_at(150, 300, "linear") == pytest.approx(0.1 - 0.099 / 2)
    assert R.alpha_at(150, 300, "cosine") == pytest.approx(1e-3 + 0.099 / 2)
    with pytest.raises(ValueError):
        R.alpha_at(0, 10, "step")


def test_the_mixed_advantage():
    # one group of 2 samples, T = 4, R = 1 verifier rollout
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]], dtype=torch.float32)
    outcome = torch.tensor([1.0, 0.0])
    z = 0.5 / (math.sqrt(0.5) + 1e-6)  # (1 - 0.5) / sample std of [1, 0]
    a_out = R.mixed_advantage(outcome, None, None, mask, 2, None)
    assert a_out[0, :3].tolist() == pytest.approx([z] * 3) and a_out[0, 3] == 0
    assert a_out[1].tolist() == pytest.approx([-z] * 4)
    process = torch.zeros(2, 1, 4)
    pmask = torch.zeros(2, 1, 4, dtype=torch.bool)
    process[0, 0, 1], process[0, 0, 2], process[1, 0, 3] = 0.5, 0.5, -1.0  # steps end at tokens 1, 2 and 3
    pmask[0, 0, 1] = pmask[0, 0, 2] = pmask[1, 0, 3] = True
    vals = torch.tensor([0.5, 0.5, -1.0])
    n = ((vals - vals.mean()) / (vals.std() + 1e-6)).tolist()  # z over the group's step rewards
    a = R.mixed_advantage(outcome, process, pmask, mask, 2, 0.1)
    proc0 = [n[0] + n[1], n[0] + n[1], n[1], 0.0]  # return-to-go
    proc1 = [n[2]] * 4
    assert a[0, :3].tolist() == pytest.approx([0.9 * z + 0.1 * p for p in proc0[:3]], abs=1e-5)
    assert a[0, 3] == 0  # padding
    assert a[1].tolist() == pytest.approx([-0.9 * z + 0.1 * p for p in proc1], abs=1e-5)
    # with two verifier rollouts, one of them unplaced (count mismatch), the return-to-go is averaged over both
    two = torch.cat([process, torch.zeros(2, 1, 4)], 1)
    two_mask = torch.cat([pmask, torch.zeros(2, 1, 4, dtype=torch.bool)], 1)
    a2 = R.mixed_advantage(outcome, two, two_mask, mask, 2, 0.1)
    assert a2[1, 0].item() == pytest.approx(-0.9 * z + 0.1 * n[2] / 2, abs=1e-5)


def test_the_verifier_reward():
    assert R.verifier_reward(True, True, 1.0) == pytest.approx(1.8)
    assert R.verifier_reward(False, True, 0.5) == pytest.approx(0.4)
    assert R.verifier_reward(None, False, 0.0) == 0.0  # no final verdict: no correctness credit


def test_class_weights_follow_running_counts():
    w = R.ClassWeights(decay=0.8)
    first = w([True, False, False, False])  # counts 1 and 3: weights 1 and 1/sqrt(3), mean 1
    raw = [1.0, 1 / math.sqrt(3), 1 / math.sqrt(3), 1 / math.sqrt(3)]
    assert first == pytest.approx([x * 4 / sum(raw) for x in raw], rel=1e-5)
    assert sum(first) / 4 == pytest.approx(1.0)
    second = w([True, True, True, False])  # counts 0.8 * 1 + 0.2 * 3 = 1.4 and 0.8 * 3 + 0.2 * 1 = 2.6
    assert w.pos == pytest.approx(1.4) and w.neg == pytest.approx(2.6)
    raw = [1 / math.sqrt(1.4)] * 3 + [1 / math.sqrt(2.6)]
    assert second == pytest.approx([x * 4 / sum(raw) for x in raw], rel=1e-5)
    again = R.ClassWeights()
    again.load_state_dict(w.state_dict())
    assert again([True, False]) == w([True, False])


def test_a_corrupted_step_is_the_earliest_wrong_one_and_the_answer_changes():
    rows = math_task.generate(30, 0, levels=(2, 3))
    made = 0
    for row in rows:
        for k in range(len(row["steps"])):
            bad = corrupt(row, k, random.Random(k))
            if bad is None:
                continue
            made += 1
            assert bad["label"] == k and bad["step_values"][-1] != row["step_values"][-1]
            for j, step in enumerate(bad["steps"]):
                a, op, b, v = math_task.STEP_EQUATION.search(step).groups()
                right = math_task.apply(int(a), op, int(b)) == int(v)
                assert right == (j != k), (row["steps"], bad["steps"], k)  # only step k is wrong
            assert bad["steps"][:k] == row["steps"][:k]
    assert made > 40
    labelled = step_labelled(rows, 0)
    assert len(labelled) == 30 and 5 < sum(r["label"] >= 0 for r in labelled) < 25
    assert all(r["correct"] == (r["label"] == -1) for r in labelled)
    assert format_rows(rows[:2])[0]["completion"].startswith("<think>\n<step>")


def test_verifier_format_rows_teach_the_format_and_no_label():
    from mmthink.methods.tango.data import verifier_format_rows
    from mmthink.methods.tango.formats import parse_judgment, verifier_format_score

    rows = math_task.generate(200, 3, levels=(1, 2, 3))
    made = verifier_format_rows(rows, 0)
    assert len(made) == 200
    finals = {True: [], False: []}
    for r in made:
        solution = r["prompt"].split("Solution:\n", 1)[1].split("\n\nThe solution has", 1)[0]
        n = len(step_spans(solution))
        assert verifier_format_score(r["completion"], n) == 1.0
        j = parse_judgment(r["completion"])
        assert len(j.steps) == n
        finals[r["label"] == -1].append(j.final)
    # the verdicts are coin flips: a wrong solution is called CORRECT as often as a right one
    rate = {k: sum(v) / len(v) for k, v in finals.items()}
    assert abs(rate[True] - rate[False]) < 0.2 and 0.3 < rate[True] < 0.7, rate
