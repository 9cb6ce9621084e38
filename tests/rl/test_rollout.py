import torch

from mmthink.models.config import ModelConfig
from mmthink.models.loading import load_model
from mmthink.rl.rewards import REWARDS, RewardSpec, check_rewards, register_reward, reward_stats, score
from mmthink.rl.rollout import generate_rollouts, sequence_inputs, completion_logits, truncate_at_stop
from mmthink.rl import losses
from mmthink.errors import UserError
import pytest


@pytest.fixture(scope="module")
def tiny():
    loaded = load_model(ModelConfig(name="tiny-llama"), train=False)
    return loaded.model.eval(), loaded.tokenizer


def _prompts(tok, n):
    return [tok.apply_chat_template([{"role": "user", "content": f"question {i}"}], tokenize=False,
                                    add_generation_prompt=True) for i in range(n)]


def test_rollout_groups_masks_and_texts(tiny):
    model, tok = tiny
    g = torch.Generator().manual_seed(0)
    ro = generate_rollouts(model, tok, _prompts(tok, 3), group_size=4, max_new_tokens=10, generator=g)
    assert ro.completion_ids.shape[0] == 12 and ro.completion_ids.shape[1] <= 10
    assert ro.prompt_index.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    # the mask covers exactly the generated tokens; after it only padding
    for r in range(12):
        n = int(ro.attention[r].sum())
        assert ro.mask[r, :n].eq(1).all() and ro.mask[r, n:].eq(0).all()
        assert (ro.completion_ids[r, n:] == tok.pad_token_id).all()
    assert len(ro.texts) == 12 and all(isinstance(t, str) for t in ro.texts)
    # a row ended by itself exactly when it holds an eos token (else it ran to max_new_tokens)
    eos = {tok.eos_token_id}
    assert ro.ended == [bool(eos & set(row)) for row in ro.completion_ids.tolist()]
    # samples of one prompt differ (sampling at T=1 over a random model)
    assert len({tuple(x) for x in ro.completion_ids[:4].tolist()}) > 1


def test_greedy_rollout_matches_hf_generate(tiny):
    model, tok = tiny
    prompts = _prompts(tok, 2)
    ro = generate_rollouts(model, tok, prompts, group_size=1, max_new_tokens=8, do_sample=False)
    for i, p in enumerate(prompts):
        enc = tok(p, return_tensors="pt", add_special_tokens=False)
        out = model.generate(**enc, max_new_tokens=8, do_sample=False, pad_token_id=tok.pad_token_id)
        ref = out[0, enc["input_ids"].shape[1]:]
        n = int(ro.attention[i].sum())
        assert ro.completion_ids[i, :n].tolist() == ref[:n].tolist()


def test_logits_of_the_rollout_score_what_was_sampled(tiny):
    # Greedy tokens are the argmax of the log-prob pass's logits: the layouts line up.
    model, tok = tiny
    ro = generate_rollouts(model, tok, _prompts(tok, 3), group_size=1, max_new_tokens=6, do_sample=False)
    with torch.no_grad():
        logits = completion_logits(model, ro, slice(None))
    pred = logits.argmax(-1)
    assert ((pred == ro.completion_ids) | (ro.mask == 0)).all()
    logp = losses.token_logprobs(logits, ro.completion_ids)
    assert logp.shape == ro.mask.shape and (logp <= 0).all()


def test_stop_strings_end_rows():
    assert truncate_at_stop("abc STOP def", ["STOP"]) == ("abc STOP", True)
    assert truncate_at_stop("abc", ["STOP"]) == ("abc", False)
    assert truncate_at_stop("x;y.z", [".", ";"]) == ("x;", True)


def test_stop_string_stops_generation(tiny):
    model, tok = tiny
    # find what the greedy model says, then stop on a piece of it
    ro = generate_rollouts(model, tok, _prompts(tok, 1), group_size=1, max_new_tokens=12, do_sample=False)
    text = ro.texts[0]
    stop = text[3:5]
    ro2 = generate_rollouts(model, tok, _prompts(tok, 1), group_size=1, max_new_tokens=12, do_sample=False, stop=[stop])
    assert ro2.texts[0].endswith(stop) and len(ro2.texts[0]) <= text.find(stop) + len(stop)
    assert ro2.attention.sum() < ro.attention.sum()
    assert ro2.ended == [True] and ro.ended == [bool({tok.eos_token_id} & set(ro.completion_ids[0].tolist()))]


def test_sequence_inputs_positions_skip_left_padding(tiny):
    model, tok = tiny
    ro = generate_rollouts(model, tok, ["a", "a b c d e f"], group_size=1, max_new_tokens=3, do_sample=False)
    ids, att, pos = sequence_inputs(ro)
    for r in range(2):
        real = att[r].bool()
        assert pos[r][real].tolist() == list(range(int(real.sum())))


def test_rewards_are_weighted_and_logged_each():
    register_reward("test_len")(lambda p, c, row: len(c))
    register_reward("test_const")(lambda p, c, row: row["v"])
    specs = [RewardSpec("test_len", 0.5), RewardSpec("test_const", 2.0)]
    totals, m = score(specs, ["p0", "p1"], ["aa", "aaaa", "b", "b"], [{"v": 1}, {"v": 3}], group_size=2)
    assert totals == [0.5 * 2 + 2, 0.5 * 4 + 2, 0.5 + 6, 0.5 + 6]
    assert m["reward/test_len/mean"] == pytest.approx(2.0)
    assert m["reward/test_const/zero_std_groups"] == 1.0
    assert m["reward/test_len/zero_std_groups"] == 0.5
    assert reward_stats("r", [1.0, 3.0], 2)["r/std"] == pytest.approx(1.0)
    with pytest.raises(UserError, match="unknown reward 'nope'"):
        check_rewards([RewardSpec("nope")])
    for k in ("test_len", "test_const"):
        REWARDS.pop(k)


def test_shared_prompt_forward_matches_the_full_sequence(tiny):
    # Groups share one prompt forward; the logits (and so the log-probs) equal the one-sequence pass.
    model, tok = tiny
    g = torch.Generator().manual_seed(1)
    ro = generate_rollouts(model, tok, _prompts(tok, 3), group_size=3, max_new_tokens=7, generator=g)
    distinct = ro.prompt_index.clone()
    ro_alone = type(ro)(**{**ro.__dict__, "prompt_index": torch.arange(9)})  # every row its own prompt
    with torch.no_grad():
        full = completion_logits(model, ro_alone, slice(None))
        shared = completion_logits(model, ro, slice(None))
        mixed = completion_logits(model, ro, torch.tensor([4, 0, 3, 8]))  # shuffled rows, groups split
    assert (ro.prompt_index == distinct).all()
    assert torch.unique(ro.prompt_index).numel() == 3  # groups of 3 rows: the shared-prompt path was taken
    m = ro.mask[..., None].bool()
    torch.testing.assert_close(shared.masked_fill(~m, 0), full.masked_fill(~m, 0), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(mixed.masked_fill(~m[[4, 0, 3, 8]], 0), full[[4, 0, 3, 8]].masked_fill(~m[[4, 0, 3, 8]], 0),
                               rtol=1e-4, atol=1e-4)


def test_shared_prompt_forward_gives_the_same_gradient():
    loaded = load_model(ModelConfig(name="tiny-llama"))
    model, tok = loaded.model, loaded.tokenizer
    ro = generate_rollouts(model, tok, _prompts(tok, 2), group_size=3, max_new_tokens=5,
                           generator=torch.Generator().manual_seed(2))
    ro_alone = type(ro)(**{**ro.__dict__, "prompt_index": torch.arange(6)})
    grads = []
    for r in (ro, ro_alone):
        model.zero_grad()
        logp = losses.token_logprobs(completion_logits(model, r, slice(None)), r.completion_ids)
        (logp * r.mask).sum().backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-5)
