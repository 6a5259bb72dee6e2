"""Classification metrics (accuracy, macro precision / recall / F1, balanced accuracy, confusion matrix),
computed from scratch and checked against scikit-learn in the tests."""
from __future__ import annotations

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """(C, C) counts; rows are true classes, columns predicted ones."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return cm


def classification_metrics(y_true, y_pred, n_classes: int) -> dict:
    """Scores on a 0-100 scale; a class never predicted has precision 0 (scikit-learn's zero_division=0)."""
    cm = confusion_matrix(y_true, y_pred, n_classes)
    tp = np.diag(cm).astype(float)
    predicted, actual = cm.sum(axis=0), cm.sum(axis=1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(tp), where=(precision + recall) > 0)
    present = actual > 0
    return {
        "accuracy": 100 * tp.sum() / cm.sum(),
        "macro_precision": 100 * precision.mean(),
        "macro_recall": 100 * recall.mean(),
        "macro_f1": 100 * f1.mean(),
        "balanced_accuracy": 100 * recall[present].mean(),
        "confusion_matrix": cm.tolist(),
    }
