"""Temperature scaling: one scalar T fitted on validation logits, applied as softmax(z / T).

``train`` fits T on the validation split's logits after choosing the best epoch and
saves it in the model's ``inference.json``; the predictor divides every logit by it,
so evaluation, the MLflow pyfunc and the service all return the calibrated scores.
T > 0 does not change the argmax, so labels and F1 are unchanged.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax

# The search range of T. Fine-tuned classifiers land between about 0.7 and 3; the
# bounds only stop a degenerate validation set (all correct and confident) from
# driving T towards 0.
MIN_TEMPERATURE, MAX_TEMPERATURE = 0.05, 20.0


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``logits / temperature`` (n x classes)."""
    return np.exp(log_softmax(np.asarray(logits, dtype=np.float64) / temperature, axis=1))


def negative_log_likelihood(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    """Mean NLL of the true ``labels`` (class ids) under softmax(logits / temperature)."""
    logits, labels = np.asarray(logits, dtype=np.float64), np.asarray(labels)
    if logits.ndim != 2 or labels.shape != (logits.shape[0],) or logits.shape[0] == 0:
        raise ValueError(
            f"expected logits (n x classes) and n labels with n > 0, "
            f"got {logits.shape} and {labels.shape}"
        )
    log_p = log_softmax(logits / temperature, axis=1)
    return float(-log_p[np.arange(len(labels)), labels].mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The T in [MIN_TEMPERATURE, MAX_TEMPERATURE] that minimises the validation NLL.

    The NLL is convex in 1/T, so it has one minimum along log T; a bounded Brent
    search on log T finds it to about 1e-6 relative precision.
    """
    result = minimize_scalar(
        lambda log_t: negative_log_likelihood(logits, labels, math.exp(log_t)),
        bounds=(math.log(MIN_TEMPERATURE), math.log(MAX_TEMPERATURE)),
        method="bounded",
        options={"xatol": 1e-6},
    )
    return float(math.exp(result.x))


def uncalibrated(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """The T = 1 probabilities behind probabilities served at ``temperature``.

    log p = z / T + c per row, so softmax(T * log p) = softmax(z): the raw scores are
    recovered exactly from the calibrated ones (the evaluation reports both without
    a second forward pass).
    """
    with np.errstate(divide="ignore"):  # a probability of exactly 0 is log 0 = -inf: fine
        log_p = np.log(np.asarray(probabilities, dtype=np.float64))
    return softmax(log_p, 1.0 / temperature)
