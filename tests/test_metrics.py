"""framework.metrics: the range-aware detection vocabulary, on tiny cases computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from framework.metrics import point_adjust, range_detection_metrics, range_pr_auc, range_precision_recall

# two real ranges: R1 = rows 1-4 (4 rows), R2 = row 7; three alarm runs: rows 2, 4 and 6
TRUTH = np.array([0, 1, 1, 1, 1, 0, 0, 1, 0, 0])
ALARM = np.array([0, 0, 1, 0, 1, 0, 1, 0, 0, 0], dtype=bool)


def test_point_adjust_fills_each_detected_episode() -> None:
    assert point_adjust(TRUTH, ALARM).astype(int).tolist() == [0, 1, 1, 1, 1, 0, 1, 0, 0, 0]
    assert point_adjust(np.array([1, 0, 1]), np.array([1, 0, 0])).astype(int).tolist() == [1, 0, 0]
    assert point_adjust(np.array([0, 0]), np.array([0, 1])).astype(int).tolist() == [0, 1]


def test_range_precision_recall_by_hand() -> None:
    # recall: R1 has 2 of its 4 rows alarmed (1/2), R2 none (0) -> 1/4; precision: runs 2 and 4 lie inside R1 (1, 1),
    # run 6 outside (0) -> 2/3
    assert range_precision_recall(TRUTH, ALARM) == pytest.approx((2 / 3, 1 / 4))
    # R1 meets two alarm runs: the reciprocal cardinality halves its share -> (1/4 + 0) / 2
    assert range_precision_recall(TRUTH, ALARM, cardinality="reciprocal") == pytest.approx((2 / 3, 1 / 8))
    # existence reward: R1 = 0.5 * 1 + 0.5 * 1/2 = 3/4, R2 = 0 -> 3/8; precision has no existence reward
    assert range_precision_recall(TRUTH, ALARM, alpha=0.5) == pytest.approx((2 / 3, 3 / 8))
    # one alarm run over rows 3-6 holds 2 truth rows of 4 -> precision 1/2; it covers half of R1
    assert range_precision_recall(TRUTH, np.arange(10) // 3 == 1) == pytest.approx((2 / 3, 1 / 4))
    with pytest.raises(ValueError, match="cardinality"):
        range_precision_recall(TRUTH, ALARM, cardinality="two")


def test_range_scores_are_point_scores_for_single_points() -> None:
    truth = np.array([0, 1, 0, 0, 1, 0, 1, 0])
    alarm = np.array([0, 1, 0, 1, 0, 0, 1, 0], dtype=bool)
    assert range_precision_recall(truth, alarm) == pytest.approx((2 / 3, 2 / 3))


def test_undefined_is_nan() -> None:
    precision, recall = range_precision_recall(TRUTH, np.zeros(10, dtype=bool))
    assert math.isnan(precision) and recall == 0
    precision, recall = range_precision_recall(np.zeros(10), ALARM)
    assert precision == 0 and math.isnan(recall)
    assert math.isnan(range_pr_auc(np.zeros(4), np.arange(4.0)))


def test_range_pr_auc_by_hand() -> None:
    truth, score = np.array([0, 1, 1, 0]), np.array([0.1, 0.9, 0.2, 0.5])
    # thresholds 0.9, 0.5, 0.2, 0.1 give (P, R) = (1, 1/2), (1/2, 1/2), (2/3, 1), (1/2, 1)
    assert range_pr_auc(truth, score) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert range_pr_auc(truth, np.array([0.0, 1.0, 1.0, 0.0])) == pytest.approx(1.0)  # a perfect score
    assert range_pr_auc(truth, np.array([np.nan, 1.0, 1.0, np.nan])) == pytest.approx(1.0)  # NaN never alarms


def test_range_pr_auc_rewards_covering_a_long_range() -> None:
    truth = np.r_[np.zeros(10), np.ones(10), np.zeros(10)]
    spike_only = np.r_[np.zeros(10), 5.0, np.zeros(19)]  # one high score at the start of the range
    sustained = np.r_[np.zeros(10), np.linspace(5, 4, 10), np.zeros(10)]
    # spike_only: at 5, (P, R) = (1, 1/10); at 0 everything alarms: one run holding 10 of 30 truth rows, R = 1
    assert range_pr_auc(truth, spike_only) == pytest.approx(0.1 * 1 + 0.9 * 1 / 3)
    assert range_pr_auc(truth, sustained) == pytest.approx(1.0)


def test_range_detection_metrics_keys_and_values() -> None:
    metrics = range_detection_metrics(TRUTH, ALARM, ALARM.astype(float))
    # point-adjusted: rows 1-4 and 6 alarm -> TP 4, FP 1, FN 1 (R2)
    assert metrics["pa_precision"] == metrics["pa_recall"] == metrics["pa_f1"] == pytest.approx(0.8)
    assert metrics["range_precision"] == pytest.approx(2 / 3) and metrics["range_recall"] == pytest.approx(1 / 4)
    assert metrics["range_f1"] == pytest.approx(2 * (2 / 3) * (1 / 4) / (2 / 3 + 1 / 4))
    assert 0 <= metrics["range_pr_auc"] <= 1
    assert math.isnan(range_detection_metrics(TRUTH, ALARM)["range_pr_auc"])
