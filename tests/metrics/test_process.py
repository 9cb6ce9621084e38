"""ProcessBench F1 and balanced accuracy on hand-made predictions."""

import pytest

from mmthink.metrics.process import balanced_accuracy, processbench_f1


def test_f1_is_the_harmonic_mean_of_the_two_accuracies():
    labels = [-1, -1, 2, 0, 1]
    preds = [-1, 0, 2, 1, 1]  # correct rows: 1 of 2; erroneous rows: exactly k in 2 of 3
    out = processbench_f1(preds, labels)
    assert out["correct_acc"] == 0.5 and out["error_acc"] == pytest.approx(2 / 3)
    assert out["f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert processbench_f1([-1, -1], [-1, 3])["f1"] == 0.0  # finding no error anywhere scores 0
    assert processbench_f1([None, None], [-1, 3])["correct_acc"] == 0.0  # judging nothing is wrong on both
    with pytest.raises(ValueError):
        processbench_f1([1], [1, 2])


def test_balanced_accuracy_counts_a_missing_verdict_as_wrong():
    assert balanced_accuracy([True, True, False, None], [True, False, False, False]) == pytest.approx((1 + 1 / 3) / 2)
    assert balanced_accuracy([True, True], [True, True]) == 1.0
