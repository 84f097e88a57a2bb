"""The eager port of the published IG² loop (benchmarks/authors_loop.py) against tf_ig2.IG2.

Two independent implementations of Eqs. 7-10 (numpy round trips per step, one pair per call,
versus one compiled loop over all pairs) must give the same GradCF and attributions.
"""

import os
import sys

import keras
import numpy as np
import pytest

import tf_ig2

from conftest import REPOSITORY

sys.path.insert(0, os.path.join(REPOSITORY, "benchmarks"))

import authors_loop  # noqa: E402

STEPS = 12


def tiny_cnn():
    """Conv -> dense(12) representation -> dense(3) logits -> softmax, seeded."""
    keras.utils.set_random_seed(3)
    return keras.Sequential([
        keras.Input((6, 6, 1)),
        keras.layers.Conv2D(3, 3, activation="tanh", name="conv"),
        keras.layers.Flatten(name="flatten"),
        keras.layers.Dense(12, activation="tanh", name="representation"),
        keras.layers.Dense(3, name="logits"),
        keras.layers.Softmax(name="probabilities"),
    ])


@pytest.fixture(scope="module")
def setting():
    model = tiny_cnn()
    rng = np.random.default_rng(5)
    inputs = rng.uniform(0.0, 1.0, (2, 6, 6, 1)).astype(np.float32)
    references = rng.uniform(0.0, 1.0, (3, 6, 6, 1)).astype(np.float32)
    function = authors_loop.representation_and_logits(model, "representation", "logits")
    targets = np.argmax(function(inputs)[1].numpy(), axis=1)
    return model, function, inputs, references, targets


@pytest.mark.parametrize("step_size", ["auto", 0.15])
@pytest.mark.parametrize("batch_references", [False, True])
def test_port_agrees_with_ig2(setting, step_size, batch_references):
    model, function, inputs, references, targets = setting
    explanation = tf_ig2.IG2(model, representation_layer="representation", steps=STEPS, step_size=step_size,
                             value_range=(0.0, 1.0), step_schedule="constant").explain(inputs, references, targets)
    attributions, counterfactuals = authors_loop.authors_ig2(
        function, inputs, references, targets, steps=STEPS, step_size=step_size, value_range=(0.0, 1.0),
        batch_references=batch_references)

    assert attributions.shape == inputs.shape and attributions.dtype == np.float32
    assert counterfactuals.shape == (2, 3, 6, 6, 1) and counterfactuals.dtype == np.float32
    # The paths move by up to ~0.7 per feature; float32 rounding differences (one pair per call
    # versus all pairs at once) grow a little along the path, hence 3e-4.
    assert np.abs(explanation.counterfactuals - inputs[:, None]).max() > 0.3
    np.testing.assert_allclose(counterfactuals, explanation.counterfactuals, rtol=0, atol=3e-4)
    scale = np.abs(explanation.attributions).max()
    assert scale > 1e-2  # the attributions are not trivially zero
    np.testing.assert_allclose(attributions, explanation.attributions, rtol=0, atol=5e-4 * scale)


def _step_lengths(path):
    return np.array([np.sqrt(np.sum(np.square(b - a).reshape(len(a), -1), axis=1)) for a, b in zip(path, path[1:])])


def test_port_path_moves_by_eta_and_is_clipped(setting):
    """Unclipped, every step has length eta; clipped, steps are no longer and stay in range."""
    _, function, inputs, references, _ = setting
    pair_inputs = np.repeat(inputs[:1], 3, axis=0)
    free = authors_loop.gradpath(function, pair_inputs, references, steps=STEPS, step_size=0.15, value_range=None)
    assert len(free) == STEPS + 1
    np.testing.assert_array_equal(free[0], pair_inputs)
    np.testing.assert_allclose(_step_lengths(free), 0.15, rtol=1e-5)
    clipped = authors_loop.gradpath(function, pair_inputs, references, steps=STEPS, step_size=0.15,
                                    value_range=(0.0, 1.0))
    assert np.all(_step_lengths(clipped) <= 0.15 * (1 + 1e-5))
    ends = clipped[-1]
    assert ends.min() >= 0.0 and ends.max() <= 1.0
    assert np.any((ends == 0.0) | (ends == 1.0))


def test_normalize_by_2norm_gives_unit_rows():
    values = np.arange(1.0, 13.0, dtype=np.float32).reshape(3, 2, 2)
    normed = authors_loop.normalize_by_2norm(values)
    np.testing.assert_allclose(np.sqrt(np.sum(np.square(normed).reshape(3, -1), axis=1)), 1.0, rtol=1e-6)
    np.testing.assert_allclose(normed[0], values[0] / np.sqrt(30.0), rtol=1e-6)
