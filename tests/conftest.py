"""Shared fixtures: small Keras models with known structure, built fresh and seeded."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402


def small_cnn(input_shape=(8, 8, 1), classes=3, softmax=True, seed=0):
    """Conv -> flatten -> dense(16) -> dense(classes): the representation is the 16 units."""
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input(input_shape),
        keras.layers.Conv2D(4, 3, activation="tanh", name="conv"),
        keras.layers.Flatten(name="flatten"),
        keras.layers.Dense(16, activation="tanh", name="features"),
        keras.layers.Dense(classes, activation="softmax" if softmax else None, name="logits"),
    ])


@pytest.fixture
def cnn():
    return small_cnn()


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def listing(folder):
    """Every file below ``folder`` with its bytes."""
    found = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as handle:
                found[os.path.relpath(path, folder)] = handle.read()
    return found


def nearest_reference(inputs, references):
    """The smallest Euclidean distance between an input ``(N, ...)`` and a reference ``(R, ...)``."""
    differences = np.asarray(inputs)[:, None] - np.asarray(references)[None]
    return float(np.linalg.norm(differences.reshape(differences.shape[:2] + (-1,)), axis=-1).min())
