"""Tango's formats: parsing verdicts, the generator and verifier format scores on hand-made strings."""

import pytest

from mmthink.methods.tango.formats import (answer_of, generator_format_score, parse_judgment, solution_text,
                                           step_spans, verifier_format_score, verifier_prompt)

GOOD = ("<step_verification>\n<step>Step 1 Analysis: fine. \\boxed{CORRECT}</step>\n"
        "<step>Step 2 Analysis: 6 * 3 is 18, not 19. \\box{incorrect}</step>\n</step_verification>\n"
        "<final_verification>\\boxed{INCORRECT}</final_verification>")


def test_a_judgment_reads_step_verdicts_and_the_final_one():
    j = parse_judgment(GOOD)
    assert j.steps == [True, False] and j.final is False and j.first_error == 1
    assert parse_judgment("<final_verification>\\box{Correct}.</final_verification>").final is True
    empty = parse_judgment("no tags at all")
    assert empty.steps == [] and empty.final is None and empty.first_error is None


def test_the_verifier_format_score_and_its_penalties():
    assert verifier_format_score(GOOD, 2) == 1.0
    assert verifier_format_score(GOOD, 3) == pytest.approx(0.2)  # verdict count != S
    assert verifier_format_score(GOOD, 3, generator_format=0.5) == 1.0  # count unchecked: the solution was malformed
    assert verifier_format_score("Sure! " + GOOD, 2) == 0.0  # text before the blocks
    bad_final = GOOD.replace("<final_verification>\\boxed{INCORRECT}", "<final_verification>wrong")
    assert verifier_format_score(bad_final, 2) == pytest.approx(0.2)
    outside = GOOD.replace("<step_verification>\n", "<step_verification>\nnotes ")
    assert verifier_format_score(outside, 2) == pytest.approx(0.6)
    no_steps = ("<step_verification>just text</step_verification><final_verification>\\boxed{CORRECT}"
                "</final_verification>")
    assert verifier_format_score(no_steps, 2) == 0.0  # 1 - 0.8 (no step tags) - 0.4 (text outside), clipped


def test_the_generator_format_score():
    three = solution_text(["1 + 1 = 2.", "2 + 1 = 3.", "3 * 2 = 6."], "6")
    assert generator_format_score(three) == 1.0 and answer_of(three) == "6"
    assert generator_format_score(solution_text(["1 + 1 = 2."], "2")) == pytest.approx(0.6)  # fewer than 3 steps
    assert generator_format_score("<think>x</think><answer>6</answer>") == 0.0  # 1 - 0.8 - 0.8, clipped
    assert generator_format_score("<step>a</step><step>b</step><step>c</step><answer>6</answer>") == pytest.approx(0.2)
    assert generator_format_score("\\boxed{6}") == 0.0  # no <answer>


def test_step_spans_cover_the_tags_and_the_verifier_is_told_s():
    text = solution_text(["a = 1.", "b = 2."], "2")
    spans = step_spans(text)
    assert [text[s:e] for s, e in spans] == ["<step>a = 1.</step>", "<step>b = 2.</step>"]
    assert "has 2 steps" in verifier_prompt("Compute it.", text)
