"""IG²'s ``step_schedule``: "constant" is the published path, "shrink" shortens a pair's steps at each rise.

The bowl tests use a model whose representation is the identity (a Dense layer with an identity
kernel): the distance to phi(x_r) is ``||gamma - x_r||``, its floor is x_r, and every normalised
step points straight at x_r, so the path stays on the line from x to x_r and its error
``e_j = ||gamma_j - x_r||`` follows ``e_{j+1} = |e_j - eta_j|`` exactly.
"""

import json

import keras
import numpy as np
import pytest

import tf_ig2
from tf_ig2 import defaults
from tf_ig2.callbacks import IG2Callback
from tf_ig2.cli import command as cli
from tf_ig2.cli import explain as cli_explain
from tf_ig2.methods import ig2 as gradpath
from tf_ig2.methods import registry

from conftest import small_cnn

RULES = ("left", "trapezoid", "midpoint", "rescaled")


def bowl(size=5, classes=3, seed=0, kernel="identity"):
    """features = gamma (identity) or W gamma (a linear layer): a quadratic distance, floor at x_r."""
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((size,)),
                              keras.layers.Dense(size, use_bias=False, kernel_initializer="identity", name="features"),
                              keras.layers.Dense(classes, name="logits")])
    if kernel is not None and not isinstance(kernel, str):
        model.get_layer("features").set_weights([np.asarray(kernel, np.float32)])
    return model


def step_lengths(path):
    """``(N, R, steps)`` Euclidean lengths of the steps of a ``(N, R, steps + 1, *S)`` path (float64)."""
    path = np.asarray(path, np.float64)
    steps = np.diff(path, axis=2).reshape(path.shape[:2] + (path.shape[2] - 1, -1))
    return np.linalg.norm(steps, axis=-1)


def distances(path, references, kernel=None):
    """``(N, R, steps + 1)`` ``||W (gamma_j - x_r)||`` along a path of ``(N, R, steps + 1, d)`` (float64)."""
    difference = np.asarray(path, np.float64) - np.asarray(references, np.float64)[None, :, None]
    if kernel is not None:
        difference = difference @ np.asarray(kernel, np.float64)
    return np.linalg.norm(difference, axis=-1)


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(3)
    return rng.random((3, 8, 8, 1)).astype(np.float32), rng.random((2, 8, 8, 1)).astype(np.float32)


# -- (1) "constant" is the published path, bit for bit -----------------------------------------------

BIT_FOR_BIT = {
    "left, auto": ("left", {}),
    "trapezoid, momentum, clipped": ("trapezoid", {"momentum": 0.5, "value_range": (0.0, 1.0)}),
    "midpoint, fixed step": ("midpoint", {"step_size": 0.05}),
    "rescaled, auto": ("rescaled", {}),
    "rescaled, fixed step, clipped": ("rescaled", {"step_size": 0.3, "value_range": (0.0, 1.0)}),
}


@pytest.mark.filterwarnings("ignore::tf_ig2.CompletenessWarning")
@pytest.mark.parametrize("case", list(BIT_FOR_BIT))
def test_constant_is_bit_for_bit_the_published_path(images, case):
    # The constant schedule runs the published loop's code, whatever the shrink factor; the loop itself is
    # checked against an independent left-rule loop in test_ig2.py and the authors' port.
    integration, extra = BIT_FOR_BIT[case]
    inputs, references = images
    model = small_cnn(softmax=False)
    omitted = tf_ig2.IG2(model, steps=6, integration=integration, step_schedule="constant", **extra).explain(
        inputs, references, return_path=True)
    constant = tf_ig2.IG2(model, steps=6, integration=integration, step_schedule="constant", shrink_factor=0.25,
                          **extra).explain(inputs, references, return_path=True)
    for name in ("attributions", "counterfactuals", "path", "target_scores", "counterfactual_scores", "delta",
                 "representation_distance"):
        assert np.array_equal(getattr(constant, name), getattr(omitted, name)), name


def test_defaults_are_declared_once():
    settings = registry.IG2Settings()
    assert settings.step_schedule == defaults.IG2_STEP_SCHEDULE == "shrink"
    assert settings.shrink_factor == defaults.IG2_SHRINK_FACTOR == 0.5
    assert gradpath.STEP_SCHEDULES == ("constant", "shrink")
    assert {"step_schedule", "shrink_factor"} <= set(gradpath.IG2_OPTIONS)


# -- (2) the quadratic bowl: the constant path bounces, the shrink path settles ----------------------

def one_dimensional(error, eta, steps, factor=None):
    """The bowl's errors ``e_0..e_k`` written out: ``e_{j+1} = |e_j - eta_j|``, eta_j shortened at each rise."""
    errors, rises = [error], 0
    for _ in range(steps):
        errors.append(abs(errors[-1] - eta * (factor or 1.0) ** rises))
        rises += factor is not None and errors[-1] > errors[-2]
    return np.array(errors)


def test_shrink_stops_the_bounce_on_a_quadratic_bowl():
    """With eta = 0.3 D (D = ||x - x_r||) the constant path reaches e = 0.1 D after 3 steps and then
    bounces between 0.1 D and 0.2 D for ever: the distance rises on every other step and consecutive
    steps point in opposite directions.

    With a factor s (here 1/2), once e_j <= eta_j the error stays at most eta_j / s: a step with
    e_j <= eta_j leaves e_{j+1} = eta_j - e_j <= eta_j, and if that was a rise eta_{j+1} = s eta_j;
    a step with eta_j < e_j <= eta_j / s leaves e_{j+1} < e_j. So the final error is at most the
    last step's length / s = eta_0 s^(m - 1), m the rises that shortened a step, and a rise adds
    less than the current step length to the distance: the rises add up to less than
    eta_0 / (1 - s) however long the path is, where the constant path's grow by 0.1 D every other step.
    """
    model, steps, factor, eta = bowl(), 20, 0.5, 0.3
    rng = np.random.default_rng(0)
    inputs, references = rng.random((3, 5)).astype(np.float32), rng.random((2, 5)).astype(np.float32)
    gaps = np.linalg.norm(inputs[:, None] - references[None], axis=-1)
    references = (inputs[:, None] + (references[None] - inputs[:, None]) / gaps[..., None]).astype(np.float32)
    run = {schedule: tf_ig2.IG2(model, steps=steps, step_size=eta, step_schedule=schedule,
                                shrink_factor=factor).explain(inputs, references, targets=0, return_path=True)
           for schedule in ("constant", "shrink")}
    gaps = np.linalg.norm(inputs[:, None].astype(np.float64) - references, axis=-1)  # D, 1 up to round-off
    errors = {schedule: np.linalg.norm(np.asarray(explanation.path, np.float64) - references[:, :, None],
                                       axis=-1) / gaps[..., None]
              for schedule, explanation in run.items()}  # (N, R, steps + 1), in units of D

    constant = errors["constant"]
    expected = one_dimensional(1.0, eta, steps)
    np.testing.assert_allclose(expected[3:7], [0.1, 0.2, 0.1, 0.2], atol=1e-12)
    np.testing.assert_allclose(constant, np.broadcast_to(expected, constant.shape), atol=2e-5)
    constant_rises = (np.diff(constant, axis=-1) > 1e-4).sum(axis=-1)
    assert (constant_rises == (steps - 2) // 2).all()  # every other step from the floor on
    moves = np.diff(np.asarray(run["constant"].path, np.float64), axis=2)
    turns = (np.einsum("nrjd,nrjd->nrj", moves[:, :, 1:], moves[:, :, :-1]) < 0).sum(axis=-1)
    assert (turns == steps - 4).all()  # each step after the first overshoot reverses the one before
    constant_total_rise = np.clip(np.diff(constant, axis=-1), 0.0, None).sum(axis=-1)
    np.testing.assert_allclose(constant_total_rise, 0.1 * constant_rises, atol=1e-4)

    shrink = errors["shrink"]
    np.testing.assert_allclose(shrink, np.broadcast_to(one_dimensional(1.0, eta, steps, factor), shrink.shape),
                               atol=2e-5)
    lengths = step_lengths(run["shrink"].path) / gaps[..., None]
    rises = np.diff(shrink, axis=-1) > 0
    shortened = rises[..., :-1].sum(axis=-1)  # the rises after steps 0..k-2 shortened the steps after them
    np.testing.assert_allclose(lengths[..., -1], eta * factor ** shortened, rtol=1e-3)
    assert (shrink[..., -1] <= lengths[..., -1] / factor * (1 + 1e-3)).all()  # the derived bound
    assert (shrink[..., -1] <= eta * factor ** (shortened - 1) * (1 + 1e-3)).all()
    assert (shortened >= 8).all() and (shrink[..., -1] < constant[..., -1] / 100).all()
    shrink_total_rise = np.clip(np.diff(shrink, axis=-1), 0.0, None).sum(axis=-1)
    assert (shrink_total_rise < eta / (1 - factor)).all()
    assert (shrink_total_rise < constant_total_rise / 4).all()
    sizes = np.diff(shrink, axis=-1)[0, 0][rises[0, 0]]
    np.testing.assert_array_less(sizes[1:], sizes[:-1])  # each bounce smaller than the one before


# -- (3) shrink_factor is checked ----------------------------------------------------------------------

@pytest.mark.parametrize("factor", [0.0, 1.0, 1.5, -0.5, float("nan")])
def test_shrink_factor_outside_zero_one_is_refused(factor):
    with pytest.raises(ValueError, match=r"`shrink_factor` must be in \(0, 1\)"):
        tf_ig2.IG2(bowl(), step_schedule="shrink", shrink_factor=factor)
    with pytest.raises(ValueError, match="shrink_factor"):
        registry.IG2Settings(shrink_factor=factor)


@pytest.mark.parametrize("factor", ["half", True, None])
def test_shrink_factor_must_be_a_number(factor):
    with pytest.raises(TypeError, match="shrink_factor"):
        tf_ig2.IG2(bowl(), step_schedule="shrink", shrink_factor=factor)


def test_unknown_step_schedule_is_refused():
    with pytest.raises(ValueError, match=r"`step_schedule` must be one of \('constant', 'shrink'\)"):
        tf_ig2.IG2(bowl(), step_schedule="linear")
    with pytest.raises(ValueError, match="step_schedule"):
        tf_ig2.ig2(bowl(), np.zeros((1, 5), np.float32), np.ones((1, 5), np.float32), step_schedule="halve")


# -- (4) the steps: non-increasing per pair, shortened by exactly the factor at each rise ---------------

@pytest.mark.parametrize("momentum", [0.0, 0.6])
@pytest.mark.parametrize("factor", [0.5, 0.8])
@pytest.mark.parametrize("steps, step_size", [(8, "auto"), (30, 0.2)])
def test_steps_shrink_by_the_factor_at_each_rise_and_only_then(momentum, factor, steps, step_size):
    """A narrow valley (an ill-conditioned linear representation): the path zig-zags across it."""
    kernel = np.diag([1.0, 12.0, 3.0, 0.5]).astype(np.float32)
    model = bowl(size=4, kernel=kernel)
    rng = np.random.default_rng(5)
    inputs, references = rng.random((3, 4)).astype(np.float32), rng.random((2, 4)).astype(np.float32)
    explanation = tf_ig2.IG2(model, steps=steps, step_size=step_size, step_schedule="shrink", shrink_factor=factor,
                             momentum=momentum).explain(inputs, references, targets=1, return_path=True)
    lengths = step_lengths(explanation.path)
    distance = distances(explanation.path, references, kernel)
    change = np.diff(distance, axis=-1) / distance[..., :-1]
    assert (np.abs(change[..., :-1]) > 1e-4).all()  # no near tie that float32 could decide either way
    rose = change[..., :-1] > 0  # the rise after step j shortens step j + 1
    assert (rose.sum(axis=-1) >= 1).all() and rose.sum() >= 10  # the valley makes the paths rise
    if step_size == "auto":  # the start length is step_size's
        start = defaults.AUTO_STEP_FACTOR * np.linalg.norm(inputs[:, None] - references[None], axis=-1) / steps
    else:
        start = np.full(lengths.shape[:2], step_size)
    np.testing.assert_allclose(lengths[..., 0], start, rtol=1e-5)
    np.testing.assert_allclose(lengths[..., 1:], lengths[..., :-1] * np.where(rose, factor, 1.0), rtol=2e-3,
                               atol=2e-6)
    assert (lengths[..., 1:] <= lengths[..., :-1] * (1 + 1e-4) + 1e-6).all()
    np.testing.assert_allclose(lengths[..., -1], start * factor ** rose.sum(axis=-1), rtol=2e-3)


def test_each_pair_has_its_own_step_length():
    """The same input against a far and a near reference: only the near pair overshoots and shrinks."""
    model = bowl()
    x = np.full((1, 5), 0.5, np.float32)
    direction = np.array([1.0, -1.0, 0.5, 0.0, 2.0], np.float32) / np.linalg.norm([1.0, -1.0, 0.5, 0.0, 2.0])
    references = np.stack([x[0] + 3.0 * direction, x[0] + 0.27 * direction])  # eta 0.1: 30 and 2.7 steps away
    explanation = tf_ig2.IG2(model, steps=10, step_size=0.1, step_schedule="shrink").explain(
        x, references, targets=0, return_path=True)
    lengths = step_lengths(explanation.path)[0]
    np.testing.assert_allclose(lengths[0], 0.1, rtol=1e-4)  # never overshoots
    assert lengths[1, -1] < 0.1 * 0.5 ** 2


# -- works with the rest of IG²: every rule, clipping, several inputs, tokens, T targets, no retrace --

@pytest.mark.parametrize("integration", RULES)
def test_every_rule_keeps_the_linear_closed_form(integration):
    """A linear model: every rule is exact on any path, so A = w * (x - mean GradCF) also with shrinking steps."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3, name="linear")])
    rng = np.random.default_rng(1)
    inputs, references = rng.random((3, 6)).astype(np.float32), rng.random((2, 6)).astype(np.float32)
    explanation = tf_ig2.IG2(model, steps=12, integration=integration, step_schedule="shrink", step_size=0.4,
                             representation_layer="output", value_range=(0.0, 1.0)).explain(inputs, references,
                                                                                             targets=2)
    weights = model.get_layer("linear").kernel.numpy()[:, 2]
    np.testing.assert_allclose(explanation.attributions, weights * (inputs - explanation.counterfactuals.mean(axis=1)),
                               rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(explanation.delta, 0.0, atol=1e-5)


def test_clipping_keeps_the_path_inside_and_the_steps_no_longer_than_the_schedule(images):
    inputs, references = images
    model = small_cnn(softmax=False)
    explanation = tf_ig2.IG2(model, steps=10, step_schedule="shrink", step_size=0.5, value_range=(0.0, 1.0),
                             integration="rescaled").explain(inputs, references, return_path=True)
    assert explanation.path.min() >= 0.0 and explanation.path.max() <= 1.0
    assert (step_lengths(explanation.path) <= 0.5 * (1 + 1e-5)).all()
    np.testing.assert_allclose(explanation.delta, 0.0, atol=1e-4)


def two_input_bowl():
    keras.utils.set_random_seed(0)
    left, right = keras.Input((3,), name="left"), keras.Input((2,), name="right")
    joined = keras.layers.Concatenate(name="join")([left, right])
    features = keras.layers.Dense(5, use_bias=False, kernel_initializer="identity", name="features")(joined)
    return keras.Model([left, right], keras.layers.Dense(3, name="logits")(features))


def test_several_inputs_share_one_step_length_per_pair():
    model = two_input_bowl()
    rng = np.random.default_rng(2)
    inputs = [rng.random((2, 3)).astype(np.float32), rng.random((2, 2)).astype(np.float32)]
    references = [rng.random((2, 3)).astype(np.float32), rng.random((2, 2)).astype(np.float32)]
    explanation = tf_ig2.IG2(model, steps=16, step_size=0.15, step_schedule="shrink", shrink_factor=0.5).explain(
        inputs, references, targets=0, return_path=True)
    path = np.concatenate([np.asarray(part, np.float64) for part in explanation.path], axis=-1)  # (N, R, k+1, 5)
    joint = step_lengths(path)
    target = np.concatenate(references, axis=-1)
    error = distances(path, target)
    rose = np.diff(error, axis=-1)[..., :-1] > 0
    assert rose.any()
    np.testing.assert_allclose(joint[..., 1:], joint[..., :-1] * np.where(rose, 0.5, 1.0), rtol=2e-3, atol=2e-6)
    separate = [step_lengths(part) for part in explanation.path]
    assert not np.allclose(separate[0], joint) and not np.allclose(separate[1], joint)  # one length, both inputs


def test_token_ids_through_an_input_layer():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,), dtype="int32"), keras.layers.Embedding(20, 4, name="embedding"),
                              keras.layers.Flatten(), keras.layers.Dense(8, activation="tanh", name="features"),
                              keras.layers.Dense(2, name="logits")])
    rng = np.random.default_rng(0)
    ids, reference = rng.integers(1, 20, (2, 6)), np.zeros((1, 6), np.int64)
    ids[:, -1] = 0  # padding never moves
    settings = dict(steps=12, input_layer="embedding", step_size=0.4)
    constant = tf_ig2.IG2(model, step_schedule="constant", **settings).explain(ids, reference, targets=1,
                                                                          return_path=True)
    shrink = tf_ig2.IG2(model, step_schedule="shrink", **settings).explain(ids, reference, targets=1,
                                                                           return_path=True)
    assert shrink.attributions.shape == (2, 6) and np.isfinite(shrink.attributions).all()
    assert (shrink.attributions[:, -1] == 0.0).all()
    assert shrink.path.shape == constant.path.shape == (2, 1, 13, 6, 4)
    assert (step_lengths(shrink.path) <= 0.4 * (1 + 1e-5)).all()
    assert not np.array_equal(shrink.counterfactuals, constant.counterfactuals)


def test_several_targets_share_the_shrinking_path(images):
    inputs, references = images
    explainer = tf_ig2.IG2(small_cnn(softmax=False), steps=8, step_schedule="shrink", step_size=0.6,
                           integration="trapezoid")
    both = explainer.explain(inputs, references, targets=np.array([[0, 2]] * 3))
    for column, target in enumerate((0, 2)):
        alone = explainer.explain(inputs, references, targets=target)
        np.testing.assert_allclose(both.attributions[:, column], alone.attributions, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(both.counterfactuals, alone.counterfactuals, rtol=0, atol=1e-6)


def test_no_retracing(images):
    inputs, references = images
    explainer = tf_ig2.IG2(small_cnn(), steps=4, step_schedule="shrink")
    explainer.explain(inputs, references)
    traced = explainer.tracing_count
    for _ in range(3):
        explainer.explain(inputs[::-1], references)
    assert explainer.tracing_count == traced


def test_functional_form_takes_the_options(images):
    inputs, references = images
    model = small_cnn()
    direct = tf_ig2.IG2(model, steps=5, step_schedule="shrink", shrink_factor=0.3).explain(inputs, references)
    functional = tf_ig2.ig2(model, inputs, references, steps=5, step_schedule="shrink", shrink_factor=0.3)
    np.testing.assert_array_equal(functional.attributions, direct.attributions)


# -- (5) the command line and the callback ---------------------------------------------------------------

def test_command_line_flags_come_from_the_settings(capsys):
    assert cli.main(["explain", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "--step-schedule {constant,shrink}" in out and "--shrink-factor F" in out
    assert "(ig2) how the step length changes along the path" in out
    assert cli_explain.method_flags()["shrink_factor"] == "--shrink-factor"

    def options(*flags):
        args = cli.build_parser().parse_args(["explain", "model.keras", "--inputs", "x.npy", "--output", "out", *flags])
        return cli_explain.method_options(args)

    assert options("--step-schedule", "shrink", "--shrink-factor", "0.25") == {"step_schedule": "shrink",
                                                                              "shrink_factor": 0.25}
    with pytest.raises(cli_explain.UsageError, match="shrink_factor"):
        options("--shrink-factor", "2")
    with pytest.raises(cli_explain.UsageError, match="--step-schedule: not an option of --method ig"):
        options("--method", "ig", "--step-schedule", "shrink")


@pytest.mark.filterwarnings("ignore::tf_ig2.CompletenessWarning")
def test_command_line_run_records_the_options(tmp_path, capsys):
    model = small_cnn(seed=2)
    model.save(tmp_path / "cnn.keras")
    rng = np.random.default_rng(0)
    inputs, references = rng.random((2, 8, 8, 1)).astype(np.float32), rng.random((2, 8, 8, 1)).astype(np.float32)
    np.save(tmp_path / "inputs.npy", inputs)
    np.save(tmp_path / "references.npy", references)
    status = cli.main(["explain", str(tmp_path / "cnn.keras"), "--inputs", str(tmp_path / "inputs.npy"),
                       "--references", str(tmp_path / "references.npy"), "--steps", "6", "--target", "1",
                       "--step-schedule", "shrink", "--shrink-factor", "0.25", "--output", str(tmp_path / "out"),
                       "--quiet"])
    assert status == 0, capsys.readouterr().err
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["settings"]["step_schedule"] == "shrink" and summary["settings"]["shrink_factor"] == 0.25
    expected = tf_ig2.IG2(model, steps=6, step_schedule="shrink", shrink_factor=0.25).explain(inputs, references, 1)
    np.testing.assert_allclose(np.load(tmp_path / "out" / "attributions.npy"), expected.attributions, rtol=0,
                               atol=1e-7)


@pytest.mark.filterwarnings("ignore::tf_ig2.DegenerateWarning")
def test_callback_passes_the_options_through(tmp_path):
    model = small_cnn()
    rng = np.random.default_rng(0)
    images = rng.random((2, 8, 8, 1)).astype(np.float32)
    callback = IG2Callback(images, images[:1], steps=4, step_schedule="shrink", shrink_factor=0.25,
                           output_dir=str(tmp_path))
    callback.set_model(model)
    callback.explain()
    assert callback.explainer.step_schedule == "shrink" and callback.explainer.shrink_factor == 0.25
    with pytest.raises(ValueError, match="shrink_factor"):
        IG2Callback(images, images[:1], shrink_factor=1.0, output_dir=str(tmp_path))
    with pytest.raises(ValueError, match="step_schedule"):
        IG2Callback(images, images[:1], step_schedule="slow", output_dir=str(tmp_path))
