import math

import pytest

from tinyvit.metrics import classification_metrics, format_table, full_report


def test_metrics_match_hand_computed_values():
    # 3 classes, 6 samples. Confusion (rows true): [[2,0,0],[1,1,0],[0,1,1]]
    y_true = [0, 0, 1, 1, 2, 2]
    y_pred = [0, 0, 0, 1, 1, 2]
    m = classification_metrics(y_true, y_pred, 3)
    assert m["accuracy"] == pytest.approx(4 / 6)
    precision = [2 / 3, 1 / 2, 1 / 1]
    recall = [1, 1 / 2, 1 / 2]
    f1 = [2 * p * r / (p + r) for p, r in zip(precision, recall)]
    assert m["precision"] == pytest.approx(sum(precision) / 3)
    assert m["recall"] == pytest.approx(sum(recall) / 3)
    assert m["f1"] == pytest.approx(sum(f1) / 3)
    # Multiclass MCC from the confusion matrix (Gorodkin): (c*s - sum p_k t_k) / sqrt(...)
    c, s = 4, 6
    t = [2, 2, 2]
    p = [3, 2, 1]
    num = c * s - sum(a * b for a, b in zip(p, t))
    den = math.sqrt(s * s - sum(x * x for x in p)) * math.sqrt(s * s - sum(x * x for x in t))
    assert m["mcc"] == pytest.approx(num / den)


def test_classes_absent_from_a_split_count_as_zero_not_as_missing():
    m = classification_metrics([0, 0, 1], [0, 0, 1], 4)
    assert m["accuracy"] == 1.0
    assert m["recall"] == pytest.approx(0.5)  # two of four classes have recall 1


def test_report_has_confusion_and_per_class_rows():
    r = full_report([0, 1, 1, 2], [0, 1, 2, 2], ["a", "b", "c"])
    assert r["confusion_matrix"] == [[1, 0, 0], [0, 1, 1], [0, 0, 1]]
    assert [row["support"] for row in r["per_class"]] == [1, 2, 1]
    assert r["per_class"][1]["recall"] == pytest.approx(0.5)
    assert r["class_names"] == ["a", "b", "c"]


def test_table_prints_percentages_in_the_slides_column_order():
    text = format_table([("test", {"accuracy": 0.8259, "f1": 0.8243, "recall": 0.8259, "mcc": 0.807,
                                   "precision": 0.8276})])
    header, _, row = text.splitlines()
    assert header.split() == ["Accuracy", "F1", "Recall", "MCC", "Precision"]
    assert row.split() == ["test", "82.59", "82.43", "82.59", "80.70", "82.76"]
