import math

import pytest
import torch

from mmthink.metrics.calibration import (
    accuracy,
    apply_temperature,
    brier,
    calibration_report,
    ece,
    fit_temperature,
    mce,
    nll,
    reliability_diagram,
    temperature_nll,
    tl_ece,
)

# Six examples, three classes; confidences kept away from bin edges (10 bins of width 0.1).
#   row  probs               y  conf  pred  correct  bin
#   1    .65 .25 .10         0  .65   0     1        6
#   2    .15 .62 .23         2  .62   1     0        6
#   3    .85 .05 .10         0  .85   0     1        8
#   4    .05 .85 .10         0  .85   1     0        8
#   5    .03 .02 .95         2  .95   2     1        9
#   6    .45 .35 .20         1  .45   0     0        4
PROBS = torch.tensor(
    [
        [0.65, 0.25, 0.10],
        [0.15, 0.62, 0.23],
        [0.85, 0.05, 0.10],
        [0.05, 0.85, 0.10],
        [0.03, 0.02, 0.95],
        [0.45, 0.35, 0.20],
    ],
    dtype=torch.float64,
)
LABELS = torch.tensor([0, 2, 0, 0, 2, 1])


def test_golden_values_by_hand():
    # Bins: b4 {6}: acc 0, conf .45, gap .45 | b6 {1,2}: acc .5, conf .635, gap .135
    #       b8 {3,4}: acc .5, conf .85, gap .35 | b9 {5}: acc 1, conf .95, gap .05
    # ECE = (1*.45 + 2*.135 + 2*.35 + 1*.05) / 6 = 1.47 / 6 = 0.245
    assert ece(PROBS, LABELS) == pytest.approx(0.245, abs=1e-12)
    # MCE = max(.45, .135, .35, .05) = .45
    assert mce(PROBS, LABELS) == pytest.approx(0.45, abs=1e-12)
    # TL-ECE, by predicted label:
    #   pred 0 = {1,3,6}: one per bin, gaps |1-.65| + |1-.85| + |0-.45| = .35 + .15 + .45 = .95
    #   pred 1 = {2,4}:   gaps |0-.62| + |0-.85| = 1.47
    #   pred 2 = {5}:     gap |1-.95| = .05
    # TL-ECE = (.95 + 1.47 + .05) / 6 = 2.47 / 6 = 0.411666...
    assert tl_ece(PROBS, LABELS) == pytest.approx(2.47 / 6, abs=1e-12)
    # NLL = -(ln .65 + ln .23 + ln .85 + ln .05 + ln .95 + ln .35) / 6 = 6.15982... / 6 = 1.0266376
    assert nll(PROBS, LABELS) == pytest.approx(1.026637584681565, abs=1e-12)
    # Brier, per row sum_k (p - onehot)^2:
    #   .35²+.25²+.10² = .195 | .15²+.62²+.77² = .9998 | .15²+.05²+.10² = .035
    #   .95²+.85²+.10² = 1.635 | .03²+.02²+.05² = .0038 | .45²+.65²+.20² = .665
    # sum 3.5336 over N*K = 18 cells: 0.196311...
    assert brier(PROBS, LABELS) == pytest.approx(3.5336 / 18, abs=1e-12)
    # rows 1, 3, 5 correct
    assert accuracy(PROBS, LABELS) == 0.5
    rep = calibration_report(PROBS, LABELS)
    assert rep["ece"] == pytest.approx(0.245) and rep["n"] == 6
    assert set(rep) == {"ece", "mce", "tl_ece", "nll", "brier", "accuracy", "n"}


def test_perfect_and_worst():
    onehot = torch.eye(3, dtype=torch.float64)
    y = torch.tensor([0, 1, 2])
    assert ece(onehot, y) == 0.0 and brier(onehot, y) == 0.0 and nll(onehot, y) == pytest.approx(0.0)
    wrong = torch.tensor([1, 2, 0])  # confident and always wrong
    assert ece(onehot, wrong) == 1.0 and mce(onehot, wrong) == 1.0
    assert nll(onehot, wrong) == pytest.approx(-math.log(1e-12))  # clamped, finite


@pytest.mark.parametrize("n_bins", [5, 10, 15])
def test_agrees_with_torchmetrics(n_bins):
    from torchmetrics.classification import MulticlassCalibrationError

    g = torch.Generator().manual_seed(n_bins)
    k = 5
    probs = torch.softmax(torch.randn(700, k, generator=g) * 2.5, dim=1)
    probs[:20] = torch.eye(k)[torch.randint(0, k, (20,), generator=g)]  # confidence exactly 1.0
    labels = torch.randint(0, k, (700,), generator=g)
    for norm, ours in (("l1", ece), ("max", mce)):
        ref = MulticlassCalibrationError(num_classes=k, n_bins=n_bins, norm=norm)
        assert ours(probs, labels, n_bins) == pytest.approx(float(ref(probs, labels)), abs=1e-6)


def test_fit_temperature_recovers_over_confidence():
    g = torch.Generator().manual_seed(0)
    true = torch.randn(6000, 4, generator=g) * 2.0
    labels = torch.multinomial(torch.softmax(true, dim=1), 1, generator=g).squeeze(1)
    logits = true * 2.0  # twice over-confident: the best temperature is 2
    t = fit_temperature(logits, labels)
    assert t == pytest.approx(2.0, rel=0.08)
    # t is a minimum of the NLL
    at = temperature_nll(logits, labels, t)
    assert at <= temperature_nll(logits, labels, t * 1.1) and at <= temperature_nll(logits, labels, t / 1.1)
    assert fit_temperature(logits, labels) == t  # deterministic


def test_padding_columns_do_not_change_nll():
    g = torch.Generator().manual_seed(1)
    z, y = torch.randn(50, 3, generator=g), torch.randint(0, 3, (50,), generator=g)
    padded = torch.cat([z, torch.full((50, 2), float("-inf"))], dim=1)
    assert temperature_nll(padded, y, 1.7) == pytest.approx(temperature_nll(z, y, 1.7), abs=1e-12)


def test_temperature_keeps_accuracy():
    g = torch.Generator().manual_seed(2)
    z, y = torch.randn(300, 4, generator=g), torch.randint(0, 4, (300,), generator=g)
    accs = {accuracy(apply_temperature(z, t), y) for t in (0.05, 0.5, 1.0, 3.0, 50.0)}
    assert len(accs) == 1
    with pytest.raises(ValueError):
        apply_temperature(z, 0.0)


def test_reliability_diagram_png(tmp_path):
    from PIL import Image

    path = reliability_diagram(PROBS, LABELS, tmp_path / "sub" / "rel.png", title="toy")
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] > 100
    assert [p.name for p in path.parent.iterdir()] == ["rel.png"]  # no temporary file left


def test_bad_shapes():
    with pytest.raises(ValueError):
        ece(PROBS, LABELS[:3])
    with pytest.raises(ValueError):
        nll(PROBS, torch.tensor([0, 1, 2, 3, 0, 0]))
