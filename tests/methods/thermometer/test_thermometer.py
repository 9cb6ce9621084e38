import pytest
import torch

from mmthink.errors import UserError
from mmthink.methods.thermometer.apply import calibrate_task
from mmthink.methods.thermometer.evaluate import METHODS, format_report, leave_one_task_out, pooled_labelled
from mmthink.methods.thermometer.features_io import TaskFeatures, load_features, save_task
from mmthink.methods.thermometer.config import ThermometerConfig
from mmthink.methods.thermometer.fit import split_rows, train_thermometer, training_record
from mmthink.methods.thermometer.losses import gamma_prior_nll, thermometer_loss
from mmthink.methods.thermometer.model import (
    Thermometer,
    dataset_inverse_temperature,
    dataset_temperature,
    load_calibrator,
    save_calibrator,
)
from mmthink.metrics.calibration import temperature_nll

FACTORS = (1.0, 1.6, 2.2, 2.8, 3.4, 4.0)


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny networks: extra threads only add contention


def synthetic_tasks(seed: int = 0, n: int = 400, d: int = 16, k: int = 4) -> dict[str, TaskFeatures]:
    """Tasks whose LM is over-confident by a task factor c (the best temperature is c), and whose
    features tell c: noise + c * a fixed direction. 10% of each task's rows are unlabelled."""
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(d, generator=g)
    u /= u.norm()
    tasks = {}
    for i, c in enumerate(FACTORS):
        true = torch.randn(n, k, generator=g) * 1.5
        labels = torch.multinomial(torch.softmax(true, dim=1), 1, generator=g).squeeze(1)
        labels[: n // 10] = -1
        feats = torch.randn(n, d, generator=g) * 0.5 + c * u
        tasks[f"task{i}"] = TaskFeatures(f"task{i}", feats, true * c, labels)
    return tasks


FAST = ThermometerConfig(hidden=32, steps=200, batch_size=64, lr=3e-3, val_every=25)


# ---------------------------------------------------------------- losses (golden values)


def test_gamma_prior_golden():
    # -log Gamma(tau; k=1.25, theta=4) = -(k-1) ln tau + tau/theta + lgamma(k) + k ln theta
    # tau = 1: -0 + 0.25 + lgamma(1.25) + 1.25 ln 4 = 0.25 - 0.0982718 + 1.7328680 = 1.8845961
    assert float(gamma_prior_nll(torch.tensor(1.0))) == pytest.approx(1.8845961149780506, abs=1e-6)
    # tau = 2: -0.25 ln 2 + 0.5 - 0.0982718 + 1.7328680 = 1.9613093
    assert float(gamma_prior_nll(torch.tensor(2.0))) == pytest.approx(1.9613093198380642, abs=1e-6)
    # tau = 0.5: +0.25 ln 2 + 0.125 - 0.0982718 + 1.7328680 = 1.9328829
    assert float(gamma_prior_nll(torch.tensor(0.5))) == pytest.approx(1.932882910118037, abs=1e-6)
    # the mode (k - 1) theta = 1: lower NLL than on either side
    assert float(gamma_prior_nll(torch.tensor(1.0))) < min(float(gamma_prior_nll(torch.tensor(t))) for t in (0.9, 1.1))
    # against torch.distributions with rate = 1 / theta
    ref = -torch.distributions.Gamma(1.25, 0.25).log_prob(torch.tensor(3.0))
    assert float(gamma_prior_nll(torch.tensor(3.0))) == pytest.approx(float(ref), abs=1e-6)


def test_thermometer_loss_golden():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    labels = torch.tensor([0, 1])
    # inverse temperatures .5 and 1.5 -> the batch's 1/tau = 1, tau = 1
    # CE: ln(1 + e^-2) = 0.1269280, ln(1 + e^-1) = 0.3132617; mean 0.2200948
    # loss = 0.2200948 + 0.01 * 1.8845961 = 0.2389408
    loss = thermometer_loss(logits, labels, torch.tensor([0.5, 1.5]), lam=1e-2)
    assert float(loss) == pytest.approx(0.23894081043037826, abs=1e-6)
    # 1/tau = 0.5 (tau = 2): scaled logits [1, 0] and [0, .5]: CE ln(1 + e^-1) = 0.3132617,
    # ln(1 + e^-.5) = 0.4740770; mean 0.3936693; + 0.01 * 1.9613093 = 0.4132824
    loss = thermometer_loss(logits, labels, torch.tensor([0.25, 0.75]), lam=1e-2)
    assert float(loss) == pytest.approx(0.4132824290475454, abs=1e-6)
    # lam = 0: plain CE at the batch temperature
    plain = thermometer_loss(logits, labels, torch.tensor(1.0), lam=0.0)
    assert float(plain) == pytest.approx(0.22009484928059775, abs=1e-6)


# ---------------------------------------------------------------- model


def test_model_shape_and_positive():
    torch.manual_seed(0)
    m = Thermometer(16, 8)
    assert len(m.branches) == 3 and m.mix.in_features == 3
    inv = m(torch.randn(5, 16) * 10)
    assert inv.shape == (5,) and bool((inv > 0).all())
    feats = torch.randn(7, 16)
    assert dataset_inverse_temperature(m, feats) == pytest.approx(float(m(feats).detach().mean()), rel=1e-6)
    chunked = dataset_inverse_temperature(m, feats, chunk=3)
    assert chunked == pytest.approx(dataset_inverse_temperature(m, feats), rel=1e-6)


def test_calibrator_round_trip(tmp_path):
    torch.manual_seed(0)
    m = Thermometer(16, 8)
    feats = torch.randn(20, 16)
    folder = save_calibrator(tmp_path / "cal", m, {"config": {"hidden": 8}, "tasks": ["a"]})
    save_calibrator(folder, m, {"config": {"hidden": 8}, "tasks": ["a"]})  # overwriting works too
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cal"]  # no temporary folders left
    loaded, info = load_calibrator(folder)
    assert info["d"] == 16 and info["hidden"] == 8 and info["training"]["tasks"] == ["a"]
    assert dataset_temperature(loaded, feats) == dataset_temperature(m, feats)
    logits = torch.randn(20, 4)
    tau, probs = calibrate_task(folder, feats, logits)
    assert tau == dataset_temperature(m, feats)
    assert torch.allclose(probs, torch.softmax(logits.double() / tau, dim=1))
    with pytest.raises(UserError, match="expects"):
        calibrate_task(folder, torch.randn(20, 15), logits)
    with pytest.raises(UserError, match="not a Thermometer calibrator"):
        load_calibrator(tmp_path / "nowhere")


# ---------------------------------------------------------------- features folder


def test_features_folder_round_trip(tmp_path):
    tasks = synthetic_tasks(n=30)
    for t in list(tasks.values())[:3]:
        save_task(tmp_path / t.name, t.features, t.logits, t.labels, {"model": "toy", "letters": "ABCD"})
    loaded = load_features(tmp_path)
    assert list(loaded) == ["task0", "task1", "task2"]
    for name, t in loaded.items():
        assert torch.equal(t.features, tasks[name].features) and torch.equal(t.logits, tasks[name].logits)
        assert torch.equal(t.labels, tasks[name].labels) and t.labels.dtype == torch.int64
        assert t.meta == {"model": "toy", "letters": "ABCD"}


def test_features_folder_errors(tmp_path):
    with pytest.raises(UserError, match="features folder not found"):
        load_features(tmp_path / "missing")
    with pytest.raises(UserError, match="no <task>.safetensors"):
        load_features(tmp_path)
    with pytest.raises(UserError, match="disagree on the number of rows"):
        save_task(tmp_path / "bad", torch.randn(5, 4), torch.randn(4, 3), torch.zeros(5, dtype=torch.long))
    from safetensors.torch import save_file

    save_file({"features": torch.randn(5, 4), "logits": torch.randn(5, 3), "labels": torch.zeros(4, dtype=torch.long)},
              str(tmp_path / "bad.safetensors"))
    with pytest.raises(UserError, match="bad: .*disagree"):
        load_features(tmp_path)
    save_task(tmp_path / "bad", torch.randn(5, 4), torch.randn(5, 3), torch.tensor([0, 1, 2, -1, 0]))
    save_task(tmp_path / "other", torch.randn(5, 6), torch.randn(5, 3), torch.zeros(5, dtype=torch.long))
    with pytest.raises(UserError, match="different sizes d"):
        load_features(tmp_path)
    with pytest.raises(UserError, match="labels must be -1"):
        save_task(tmp_path / "x", torch.randn(2, 4), torch.randn(2, 3), torch.tensor([0, 3]))


# ---------------------------------------------------------------- training and evaluation


def test_split_is_per_task_and_labelled_only():
    tasks = synthetic_tasks(n=100)
    train, val = split_rows(tasks["task1"], 0.1, seed=0)
    assert len(val) == 9 and len(train) == 81  # 90 labelled rows
    assert bool((tasks["task1"].labels[torch.cat([train, val])] >= 0).all())
    assert not set(train.tolist()) & set(val.tolist())
    again, _ = split_rows(tasks["task1"], 0.1, seed=0)
    assert torch.equal(train, again)


def test_training_lowers_loss_and_moves_every_parameter():
    tasks = synthetic_tasks()
    torch.manual_seed(123)
    with torch.random.fork_rng():
        torch.manual_seed(FAST.seed)
        init = Thermometer(16, FAST.hidden).state_dict()
    model, hist = train_thermometer(tasks, FAST, progress="none")
    assert sum(hist["train_loss"][-25:]) < sum(hist["train_loss"][:25])
    assert hist["val_step"][-1] == FAST.steps and hist["best_val_nll"] == min(hist["val_nll"])
    for k, v in model.state_dict().items():
        assert not torch.equal(v, init[k]), k
    again, _ = train_thermometer(tasks, FAST, progress="none")  # seeded: identical
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in model.state_dict().items())
    # The predicted temperatures follow the over-confidence factors.
    temps = [dataset_temperature(model, t.features) for t in tasks.values()]
    assert temps == sorted(temps)
    record = training_record(FAST, tasks, hist)
    assert record["config"]["hidden"] == FAST.hidden and record["tasks"] == sorted(tasks)


def test_leave_one_task_out_beats_vanilla(tmp_path):
    tasks = synthetic_tasks()
    rep = leave_one_task_out(tasks, FAST, diagrams=tmp_path / "diagrams", progress="none")
    assert set(rep["tasks"]) == set(tasks) and set(rep["mean"]) == set(METHODS)
    mean = rep["mean"]
    assert mean["thermometer"]["ece"] < 0.6 * mean["vanilla"]["ece"]
    assert mean["thermometer"]["ece"] < mean["ts_cv"]["ece"]
    assert mean["thermometer"]["nll"] < mean["vanilla"]["nll"]
    assert mean["oracle_ts"]["nll"] <= mean["thermometer"]["nll"]  # oracle TS minimises each task's NLL
    for r in rep["tasks"].values():
        assert len({r[m]["accuracy"] for m in METHODS}) == 1  # a temperature never changes the accuracy
        assert r["vanilla"]["temperature"] == 1.0
    assert len(list((tmp_path / "diagrams").glob("*.png"))) == len(tasks) * len(METHODS)
    assert "thermometer" in format_report(rep)


def test_ts_cv_pools_tasks_with_different_option_counts():
    logits_a = torch.tensor([[1.0, 0.0, 2.0], [0.0, 1.0, 0.0], [2.0, 0.0, 1.0]])
    a = TaskFeatures("a", torch.zeros(3, 2), logits_a, torch.tensor([0, 1, 2]))
    b = TaskFeatures("b", torch.zeros(2, 2), torch.tensor([[1.0, 0.0], [0.0, 3.0]]), torch.tensor([0, -1]))
    z, y = pooled_labelled([a, b])
    assert z.shape == (4, 3) and y.tolist() == [0, 1, 2, 0]
    # pooled NLL = (3 * NLL_a + 1 * NLL_b) / 4 at any temperature
    want = (3 * temperature_nll(a.logits, a.labels, 1.7) + temperature_nll(b.logits[:1], b.labels[:1], 1.7)) / 4
    assert temperature_nll(z, y, 1.7) == pytest.approx(want, abs=1e-12)


def test_config_and_task_checks():
    with pytest.raises(UserError, match="val_fraction"):
        ThermometerConfig(val_fraction=1.0).check()
    with pytest.raises(UserError, match="at least 2 tasks"):
        leave_one_task_out(dict(list(synthetic_tasks(n=20).items())[:1]), FAST, progress="none")
