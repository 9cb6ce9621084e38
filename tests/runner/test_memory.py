"""The memory estimate's terms, against hand-computed values."""

import pytest

from mmthink.runner import memory as mem

SHAPE = mem.ModelShape(layers=28, hidden=3584, heads=28, kv_heads=4, intermediate=18944, vocab=152064)


def test_adam_training_costs_four_times_the_weights_as_accelerate_says():
    states = mem.model_states(1000, 1000, 4, "ddp", 1)
    assert states == {"weights": 4000, "gradients": 4000, "optimizer": 8000}  # 16 bytes / param in fp32
    assert sum(mem.model_states(1000, 1000, 2, "ddp", 1).values()) == 8000  # bf16 weights and moments


def test_frozen_parameters_cost_only_their_weights_and_quantised_ones_less():
    states = mem.model_states(1000, 100, 2, "ddp", 1, frozen_bytes=mem.QUANT_BYTES[4])
    assert states["weights"] == pytest.approx(100 * 2 + 900 * 0.5625)
    assert states["gradients"] == 200 and states["optimizer"] == 400


@pytest.mark.parametrize("strategy, weights, grads", [("ddp", 2000, 2000), ("zero2", 2000, 500),
                                                      ("zero3", 500, 500), ("fsdp", 500, 500)])
def test_sharding_divides_what_each_strategy_shards(strategy, weights, grads):
    states = mem.model_states(1000, 1000, 2, strategy, 4)
    assert states["weights"] == weights and states["gradients"] == grads and states["optimizer"] == 2 * grads


def test_layer_activations_follow_the_formula():
    s = mem.ShapeTokens(batch=1, tokens=2048)
    h, i, h_kv = 3584, 18944, 4 * 128
    per_token = 10 * h + 4 * h_kv + 2 * h + 8 * i + 4 * h  # bytes in 16-bit
    assert mem.layer_activations(s, SHAPE, 2) == 2048 * per_token
    assert mem.layer_activations(s, SHAPE, 4) == 2 * 2048 * per_token


def test_checkpointing_keeps_layer_inputs_and_one_layer():
    s = mem.ShapeTokens(batch=2, tokens=1000)
    full = mem.activations(s, SHAPE, 2, checkpointing=False)
    ckpt = mem.activations(s, SHAPE, 2, checkpointing=True)
    assert full == 28 * mem.layer_activations(s, SHAPE, 2)
    assert ckpt == 28 * 2 * 1000 * 3584 * 2 + mem.layer_activations(s, SHAPE, 2)
    assert ckpt < full / 5


def test_logits_and_kv_cache():
    assert mem.logits_bytes(mem.ShapeTokens(1, 10), 100, 2) == 10 * 100 * 6
    assert mem.kv_cache_bytes(3, 50, SHAPE, 2) == 2 * 28 * 4 * 128 * 50 * 3 * 2


def test_estimate_totals_its_terms_and_the_overhead():
    est = mem.Estimate()
    est.add("a", mem.GiB)
    est.add("a", mem.GiB)
    est.add("b", 0.5 * mem.GiB)
    assert est.total == pytest.approx(2.5 * mem.GiB + mem.RUNTIME_OVERHEAD)
    assert est.table()[-1] == ("total", "3.50 GiB")
