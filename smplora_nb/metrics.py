"""Metrics: membership (scikit-learn underneath) and image quality (smplora_nb, arXiv 2402.11989 companion).

Quality on the tiny ``digits`` model also has a plain check a person can read: a digit classifier trained on the
public split reads the generated images, and ``digit_accuracy`` is the fraction that show the digit their caption
asked for (chance = 0.1).
"""
from __future__ import annotations

import numpy as np


def _gray_features(images: np.ndarray) -> np.ndarray:
    x = np.asarray(images, dtype=np.float32) / 255.0                    # (N, H, W, 3)
    return x.max(axis=-1).reshape(len(x), -1)                           # (N, H*W): stroke intensity, any colour


def digit_classifier(items):
    """Logistic regression on stroke intensity, fitted on ``items`` (use the public split only)."""
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(max_iter=2000, C=1.0)
    clf.fit(_gray_features(np.stack([it.image for it in items])), [it.label for it in items])
    return clf


def digit_accuracy(clf, images: np.ndarray, labels) -> float:
    """Fraction of ``images`` that ``clf`` reads as their intended digit ``labels``."""
    return float(np.mean(clf.predict(_gray_features(images)) == np.asarray(labels)))
