"""The model as its own judge: P(Yes) renormalised over Yes/No from one forward pass."""

import math

import pytest

from mmthink.ops.judge import judge, judge_prompt, yes_no_ids, yes_probability


def test_yes_probability_is_the_renormalised_yes_no_choice():
    import torch

    p = yes_probability(torch.tensor([2.0, 0.0, -30.0]), torch.tensor([0.0, 0.0, 30.0]))
    assert p.tolist() == pytest.approx([math.exp(2) / (math.exp(2) + 1), 0.5, 0.0], abs=1e-6)


def test_the_prompt_shows_task_answer_then_question():
    text = judge_prompt("Task.", "  my answer \n", "Right?")
    assert text == "Task.\n\nProposed answer:\nmy answer\n\nRight?"


def test_judgments_are_probabilities_the_same_batched_or_alone(text_lm):
    model, tok, _ = text_lm
    prompts = [judge_prompt("Add 2 and 2.", "4"), judge_prompt("Write a long poem about the sea.", "no"),
               judge_prompt("x", "y")]
    together = judge(model, tok, prompts, batch_size=3)
    alone = [judge(model, tok, [p])[0] for p in prompts]
    assert together == pytest.approx(alone, abs=1e-4)
    assert all(0.0 < p < 1.0 for p in together) and len(set(round(p, 5) for p in together)) == 3
    import torch

    yes, no = yes_no_ids(tok)
    text = tok.apply_chat_template([{"role": "user", "content": prompts[0]}], tokenize=False, add_generation_prompt=True)
    ids = tok(text, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        last = model(**ids).logits[0, -1]
    assert together[0] == pytest.approx(torch.sigmoid(last[yes] - last[no]).item(), abs=1e-4)
    assert tok.padding_side == "left"  # the fixture's side is restored
