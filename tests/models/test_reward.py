"""The outcome reward model shared by Satori and EvoScale: loads a saved sequence classifier, scores
batches as it scores rows alone, writes (prompt, response) as a chat, names the key when it cannot load."""

import pytest

from mmthink.errors import UserError
from mmthink.models.reward import OutcomeRewardModel


def test_a_batch_scores_each_text_as_alone(tiny_reward_model):
    rm = OutcomeRewardModel(str(tiny_reward_model), "cpu", batch_size=4)
    texts = ["a short one", "a much longer text that makes the others padded in its batch", "mid length text"]
    together = rm.score(texts)
    alone = [rm.score([t])[0] for t in texts]
    assert together == pytest.approx(alone, abs=1e-4)
    assert len(set(round(s, 4) for s in together)) == 3  # a random head still tells the texts apart


def test_pairs_are_written_as_the_rm_s_chat(tiny_reward_model):
    rm = OutcomeRewardModel(str(tiny_reward_model), "cpu")
    text = rm.pair_text("What is 2 + 2?", "4")
    assert text.index("What is 2 + 2?") < text.index("4") and "<|im_start|>assistant" in text
    assert rm.score_pairs(["What is 2 + 2?"], ["4"]) == pytest.approx(rm.score([text]))


def test_a_missing_model_names_the_recipe_key(tmp_path):
    with pytest.raises(UserError, match=r"evo.reward_model '.*nothing' cannot be loaded"):
        OutcomeRewardModel(str(tmp_path / "nothing"), "cpu", key="evo.reward_model")
