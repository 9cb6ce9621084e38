import math

import pytest

from mmthink.runner.schedule import lr_factor


@pytest.mark.parametrize("step,kind,expected", [
    (0, "cosine", 0.0),  # warmup starts at zero
    (5, "cosine", 0.5),  # 5/10 of the warmup
    (10, "cosine", 1.0),  # warmup done
    (60, "cosine", 0.5),  # half way through the decay: (1 + cos(pi/2)) / 2
    (35, "cosine", 0.5 * (1 + math.cos(math.pi * 0.25))),
    (110, "cosine", 0.0),
    (60, "linear", 0.5),
    (85, "linear", 0.25),
    (60, "constant", 1.0),
    (3, "constant", 0.3),
])
def test_golden_values(step, kind, expected):
    assert lr_factor(step, warmup=10, total=110, kind=kind) == pytest.approx(expected)


def test_no_warmup_starts_at_full_lr():
    assert lr_factor(0, 0, 100, "cosine") == 1.0


def test_cosine_with_a_floor_matches_transformers_cosine_with_min_lr():
    import torch
    from transformers import get_scheduler

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    hf = get_scheduler("cosine_with_min_lr", opt, num_warmup_steps=3, num_training_steps=100,
                       scheduler_specific_kwargs={"min_lr": 0.1})
    for step in range(100):
        assert lr_factor(step, 3, 100, "cosine", floor=0.1) == pytest.approx(hf.get_last_lr()[0], abs=1e-12)
        opt.step()
        hf.step()
    assert lr_factor(100, 3, 100, "cosine", floor=0.1) == pytest.approx(0.1)
