"""The noise tunnel (tf_ig2.smooth): against PAIR saliency, a plain loop, closed forms, and its contract."""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_ig2
from tf_ig2 import defaults
from tf_ig2.diagnostics import CompletenessWarning, DegenerateWarning
from tf_ig2.methods.noise_tunnel import KINDS, NoiseTunnel, SmoothSettings, noise_tunnel

from conftest import small_cnn

N, SAMPLES, STEPS, NOISE, SEED = 3, 4, 8, 0.2, 5


def tanh_mlp(features=6, classes=3, seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((features,)), keras.layers.Dense(12, activation="tanh"),
                             keras.layers.Dense(classes, name="logits")])


def linear_model(features=5, classes=3, seed=1):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((features,)), keras.layers.Dense(classes, name="logits")])


def draws(shape, count=N, samples=SAMPLES, seed=SEED):
    """The tunnel's draws for a model with one input: (N, samples, *S) float64 standard normals."""
    return np.random.default_rng(seed).standard_normal((count, samples) + tuple(shape))


def noisy_copies(inputs, samples=SAMPLES, noise=NOISE, seed=SEED, bound=None):
    """(N, samples, *S) float32 copies x + sigma * z, sigma = noise * (max(x) - min(x)) per input."""
    flat = inputs.reshape(len(inputs), -1).astype(np.float64)
    sigma = noise * (flat.max(axis=1) - flat.min(axis=1))
    z = draws(inputs.shape[1:], len(inputs), samples, seed)
    copies = (inputs[:, None].astype(np.float64) + sigma.reshape((-1, 1) + (1,) * (inputs.ndim - 1)) * z)
    copies = copies.astype(np.float32)
    return copies if bound is None else np.clip(copies, *bound).astype(np.float32)


def loop_explanations(explainer, inputs, references, targets, samples=SAMPLES, noise=NOISE, seed=SEED, bound=None):
    """Each input's copies explained by the explainer itself, one input at a time: (N, samples, ...) results."""
    copies = noisy_copies(inputs, samples, noise, seed, bound)
    parts = []
    for index in range(len(inputs)):
        own = references[index] if np.ndim(references) == inputs.ndim + 1 else references
        chosen = np.repeat(np.asarray(targets)[index:index + 1], samples, axis=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parts.append(explainer.explain(copies[index], own, chosen))
    return parts


def scale(values):
    return float(np.max(np.abs(values)))


# -- PAIR saliency, the oracle -----------------------------------------------------------------------
saliency = pytest.importorskip("saliency.core")


def saliency_call(model):
    def call_model_function(batch, call_model_args=None, expected_keys=None):
        points = tf.constant(np.asarray(batch, np.float32))
        with tf.GradientTape() as tape:
            tape.watch(points)
            scores = model(points)[:, call_model_args["target"]]
        return {saliency.INPUT_OUTPUT_GRADIENTS: tape.gradient(scores, points).numpy()}

    return call_model_function


@pytest.mark.parametrize("kind, magnitude", [("smoothgrad", False), ("smoothgrad_sq", True)])
def test_saliency_smoothed_integrated_gradients(monkeypatch, kind, magnitude):
    """saliency's GetSmoothedMask over its IntegratedGradients, fed the tunnel's draws, is the tunnel over
    tf_ig2's IG with the 'uniform' rule (saliency's: steps points from 0 to 1, each weighted 1/steps)."""
    model = small_cnn(softmax=False, seed=3)
    rng = np.random.default_rng(0)
    inputs = rng.random((N, 8, 8, 1)).astype(np.float32)
    baseline = rng.random((8, 8, 1)).astype(np.float32) * 0.2
    explainer = tf_ig2.IntegratedGradients(model, steps=STEPS, rule="uniform", batch_size=5)
    ours = tf_ig2.smooth(explainer, kind=kind, samples=SAMPLES, noise=NOISE, seed=SEED).explain(inputs, baseline)
    targets = np.argmax(model(inputs).numpy(), axis=1)
    z = draws(inputs.shape[1:])
    for index in range(N):
        taken = iter(range(SAMPLES))
        spread = NOISE * (np.float64(inputs[index].max()) - inputs[index].min())  # the tunnel's sigma

        def normal(loc, scale, size, index=index, taken=taken, spread=spread):
            assert loc == 0 and size == inputs.shape[1:] and np.isclose(scale, spread, rtol=1e-6)
            return spread * z[index, next(taken)]

        monkeypatch.setattr(np.random, "normal", normal)
        expected = saliency.IntegratedGradients().GetSmoothedMask(
            inputs[index], saliency_call(model), {"target": int(targets[index])}, stdev_spread=NOISE,
            nsamples=SAMPLES, magnitude=magnitude, x_baseline=baseline, x_steps=STEPS, batch_size=STEPS)
        monkeypatch.undo()
        # float32 gradients summed over STEPS points in another order, and copies rounded to float32 first
        np.testing.assert_allclose(ours.attributions[index], expected, rtol=1e-4, atol=1e-5 * scale(expected))
    np.testing.assert_array_equal(ours.targets, targets)


# -- a plain loop over the copies ---------------------------------------------------------------------
def explainers(model):
    return {
        "ig": (tf_ig2.IntegratedGradients(model, steps=STEPS, batch_size=4), 0.25),
        "guided_ig": (tf_ig2.GuidedIG(model, steps=STEPS, batch_size=3), 0.0),
        "ig2": (tf_ig2.IG2(model, steps=STEPS, value_range=(0.0, 1.0), batch_size=5), "per input"),
    }


@pytest.mark.parametrize("method", ["ig", "guided_ig", "ig2"])
def test_equals_a_plain_loop_over_the_copies(method):
    model = small_cnn(softmax=False, seed=2)
    rng = np.random.default_rng(4)
    inputs = rng.random((N, 8, 8, 1)).astype(np.float32)
    explainer, references = explainers(model)[method]
    bound = None
    if method == "ig2":
        references = rng.random((N, 2, 8, 8, 1)).astype(np.float32)
        bound = (0.0, 1.0)  # the copies are clipped to IG²'s value range
    targets = np.argmax(model(inputs).numpy(), axis=1)
    parts = loop_explanations(explainer, inputs, references, targets, bound=bound)
    attributions = np.stack([part.attributions for part in parts]).astype(np.float64)
    expected = {"smoothgrad": attributions.mean(axis=1), "smoothgrad_sq": (attributions ** 2).mean(axis=1),
                "vargrad": attributions.var(axis=1)}
    for kind in KINDS:
        ours = tf_ig2.smooth(explainer, kind=kind, samples=SAMPLES, noise=NOISE, seed=SEED).explain(
            inputs, references)
        tolerance = 1e-5 * scale(expected[kind])
        np.testing.assert_allclose(ours.attributions, expected[kind], rtol=1e-4, atol=tolerance)
        np.testing.assert_allclose(ours.target_scores, model(inputs).numpy()[np.arange(N), targets], rtol=1e-5)
        cf_scores = np.stack([part.counterfactual_scores for part in parts]).mean(axis=1)
        np.testing.assert_allclose(ours.counterfactual_scores, cf_scores, rtol=1e-5, atol=1e-6)
        counterfactuals = np.stack([part.counterfactuals for part in parts]).mean(axis=1)
        np.testing.assert_allclose(ours.counterfactuals, counterfactuals, rtol=1e-5, atol=1e-6)
        if kind == "smoothgrad":
            deltas = np.stack([part.delta for part in parts]).mean(axis=1)
            np.testing.assert_allclose(ours.delta, deltas, rtol=1e-4, atol=1e-5 * scale(deltas))
            noisy_scores = np.stack([part.target_scores for part in parts]).astype(np.float64).mean(axis=1)
            summed = ours.attributions.reshape(N, -1).sum(axis=1, dtype=np.float64)
            np.testing.assert_allclose(ours.delta, summed - (noisy_scores - ours.counterfactual_scores),
                                       atol=1e-5 * (scale(summed) + scale(noisy_scores)))
        else:
            assert np.all(np.isnan(ours.delta))
        if method == "ig2":
            distances = np.stack([part.representation_distance for part in parts]).mean(axis=1)
            np.testing.assert_allclose(ours.representation_distance, distances, rtol=1e-5, atol=1e-6)
            assert ours.representation == explainer.representation
        assert ours.method == method


# -- closed forms on a linear model -------------------------------------------------------------------
def test_linear_model_closed_forms():
    """f(x) = W x + b: IG's gradient is the constant w_c, so A_s = w_c * (x_s - b0) for each copy x_s and
    smoothgrad = w_c * (mean_s x_s - b0), smoothgrad_sq = w_c^2 * mean_s (x_s - b0)^2 and
    vargrad = w_c^2 * var_s(x_s), the copies' population variance."""
    model = linear_model()
    weights, bias = model.get_weights()
    rng = np.random.default_rng(2)
    inputs = rng.normal(size=(N, 5)).astype(np.float32)
    baseline = np.float32(0.5)
    targets = np.array([0, 2, 1])
    copies = noisy_copies(inputs).astype(np.float64)
    w = weights[:, targets].T.astype(np.float64)  # (N, F)
    shifted = copies - baseline
    expected = {"smoothgrad": w * shifted.mean(axis=1), "smoothgrad_sq": w ** 2 * (shifted ** 2).mean(axis=1),
                "vargrad": w ** 2 * copies.var(axis=1)}
    explainer = tf_ig2.IntegratedGradients(model, steps=4, batch_size=3)
    for kind in KINDS:
        ours = noise_tunnel(explainer, inputs, baseline, targets, kind=kind, samples=SAMPLES, noise=NOISE,
                            seed=SEED)
        # float32 products and a 4-point sum: a few float32 round-offs of the largest term
        np.testing.assert_allclose(ours.attributions, expected[kind], rtol=1e-5, atol=1e-6 * scale(expected[kind]))
    smoothed = noise_tunnel(explainer, inputs, baseline, targets, samples=SAMPLES, noise=NOISE, seed=SEED)
    logits = inputs.astype(np.float64) @ weights + bias
    np.testing.assert_allclose(smoothed.target_scores, logits[np.arange(N), targets], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(smoothed.counterfactual_scores, (baseline * weights.sum(axis=0) + bias)[targets],
                               rtol=1e-6, atol=1e-6)
    # IG is exact on a linear model: the copies' attributions add up, so their mean does too
    np.testing.assert_allclose(smoothed.delta, 0.0, atol=1e-5 * scale(logits))


def test_no_noise_gives_the_method_itself():
    model = tanh_mlp()
    inputs = np.random.default_rng(3).normal(size=(N, 6)).astype(np.float32)
    explainer = tf_ig2.IntegratedGradients(model, steps=STEPS)
    plain = explainer.explain(inputs, 0.0)
    smoothed = tf_ig2.smooth(explainer, samples=3, noise=0.0).explain(inputs)
    np.testing.assert_allclose(smoothed.attributions, plain.attributions, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(smoothed.delta, plain.delta, rtol=1e-5, atol=1e-7)
    variance = tf_ig2.smooth(explainer, kind="vargrad", samples=3, noise=0.0).explain(inputs)
    np.testing.assert_allclose(variance.attributions, 0.0, atol=1e-12)


# -- the contract ---------------------------------------------------------------------------------------
def test_seed_determinism_and_batch_size_invariance():
    model = tanh_mlp()
    inputs = np.random.default_rng(5).normal(size=(N, 6)).astype(np.float32)
    results = {}
    for batch_size in (None, 1, 5):
        explainer = tf_ig2.IntegratedGradients(model, steps=STEPS, batch_size=batch_size)
        tunnel = tf_ig2.smooth(explainer, kind="vargrad", samples=SAMPLES, noise=NOISE, seed=SEED)
        results[batch_size] = tunnel.explain(inputs, 0.0).attributions
        np.testing.assert_array_equal(tunnel.explain(inputs, 0.0).attributions, results[batch_size])
    for batch_size in (1, 5):
        np.testing.assert_allclose(results[batch_size], results[None], rtol=1e-5, atol=1e-6 * scale(results[None]))
    other = tf_ig2.smooth(tf_ig2.IntegratedGradients(model, steps=STEPS), kind="vargrad", samples=SAMPLES,
                          noise=NOISE, seed=SEED + 1).explain(inputs, 0.0)
    assert not np.allclose(other.attributions, results[None])


def test_no_retracing_between_chunks_and_calls():
    model = tanh_mlp()
    explainer = tf_ig2.IntegratedGradients(model, steps=STEPS, batch_size=3)  # 3 copies per call; 12 = 3 + ...
    tunnel = tf_ig2.smooth(explainer, samples=SAMPLES, noise=NOISE)
    rng = np.random.default_rng(6)
    tunnel.explain(rng.normal(size=(N, 6)).astype(np.float32))
    traced = tunnel.tracing_count
    assert traced == explainer.tracing_count > 0
    tunnel.explain(rng.normal(size=(N + 2, 6)).astype(np.float32))  # another N, a shorter last chunk
    assert explainer.tracing_count == traced


def test_targets_are_resolved_on_the_clean_inputs():
    """With noise this large, copies' predicted classes differ from the clean inputs'; the tunnel still
    explains the clean input's class for every copy."""
    model = tanh_mlp(seed=4)
    inputs = np.random.default_rng(7).normal(size=(N, 6)).astype(np.float32)
    noise = 1.0
    clean = np.argmax(model(inputs).numpy(), axis=1)
    copies = noisy_copies(inputs, noise=noise).reshape(N * SAMPLES, 6)
    assert np.any(np.argmax(model(copies).numpy(), axis=1).reshape(N, SAMPLES) != clean[:, None])
    explainer = tf_ig2.IntegratedGradients(model, steps=STEPS)
    predicted = tf_ig2.smooth(explainer, samples=SAMPLES, noise=noise, seed=SEED).explain(inputs)
    np.testing.assert_array_equal(predicted.targets, clean)
    parts = loop_explanations(explainer, inputs, 0.0, clean, noise=noise)
    expected = np.stack([part.attributions for part in parts]).mean(axis=1)
    np.testing.assert_allclose(predicted.attributions, expected, rtol=1e-5, atol=1e-6 * scale(expected))


def test_several_targets_equal_separate_calls():
    model = tanh_mlp(classes=4)
    inputs = np.random.default_rng(8).normal(size=(N, 6)).astype(np.float32)
    tunnel = tf_ig2.smooth(tf_ig2.IntegratedGradients(model, steps=STEPS, batch_size=4), kind="smoothgrad_sq",
                           samples=SAMPLES, noise=NOISE, seed=SEED)
    several = tunnel.explain(inputs, top_k=2)
    assert several.attributions.shape == (N, 2, 6) and several.target_scores.shape == (N, 2)
    ranked = np.argsort(-model(inputs).numpy(), axis=1)[:, :2]
    np.testing.assert_array_equal(several.targets, ranked)
    for column in range(2):
        one = tunnel.explain(inputs, 0.0, ranked[:, column])
        np.testing.assert_allclose(several.attributions[:, column], one.attributions, rtol=1e-5,
                                   atol=1e-6 * scale(one.attributions))
        np.testing.assert_allclose(several.target_scores[:, column], one.target_scores, rtol=1e-6)
    assert np.all(np.isnan(several.delta)) and several.delta.shape == (N, 2)


def two_input_model(seed=3):
    keras.utils.set_random_seed(seed)
    image = keras.Input((4, 4, 1), name="image")
    meta = keras.Input((3,), name="meta")
    merged = keras.layers.Concatenate()([keras.layers.Flatten()(image), meta])
    hidden = keras.layers.Dense(8, activation="tanh")(merged)
    return keras.Model({"image": image, "meta": meta}, keras.layers.Dense(3)(hidden))


def test_several_inputs_each_get_noise_of_their_own_range():
    """Each copy draws its inputs' normals in the model's input order (image, then meta)."""
    model = two_input_model()
    rng = np.random.default_rng(9)
    inputs = {"image": rng.random((N, 4, 4, 1)).astype(np.float32),
              "meta": (10.0 * rng.normal(size=(N, 3))).astype(np.float32)}
    explainer = tf_ig2.IntegratedGradients(model, steps=STEPS, batch_size=5)
    names = explainer.view.inputs.names
    sizes = [int(np.prod(inputs[name].shape[1:])) for name in names]
    z = np.random.default_rng(SEED).standard_normal((N, SAMPLES, sum(sizes)))
    copies = {}
    for name, part in zip(names, np.split(z, np.cumsum(sizes)[:-1], axis=2)):
        values = inputs[name]
        flat = values.reshape(N, -1).astype(np.float64)
        sigma = NOISE * (flat.max(axis=1) - flat.min(axis=1))
        copies[name] = (values[:, None].astype(np.float64) + sigma.reshape((N, 1) + (1,) * (values.ndim - 1))
                        * part.reshape((N, SAMPLES) + values.shape[1:])).astype(np.float32)
    targets = np.argmax(model(inputs).numpy(), axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parts = [explainer.explain({name: copies[name][index] for name in names}, 0.0,
                                   np.full(SAMPLES, targets[index])) for index in range(N)]
    ours = tf_ig2.smooth(explainer, samples=SAMPLES, noise=NOISE, seed=SEED).explain(inputs, 0.0)
    assert sorted(ours.attributions) == sorted(names)
    for name in names:
        expected = np.stack([part.attributions[name] for part in parts]).mean(axis=1)
        np.testing.assert_allclose(ours.attributions[name], expected, rtol=1e-5, atol=1e-6 * scale(expected))


def test_warnings_are_about_the_smoothed_result():
    """The copies' own explanations warn of nothing; an incomplete smoothed result warns once, the squares never."""
    model = tanh_mlp(seed=6)
    inputs = np.random.default_rng(10).normal(size=(N, 6)).astype(np.float32) * 3
    explainer = tf_ig2.IntegratedGradients(model, steps=2, rule="uniform")  # far from complete
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tf_ig2.smooth(explainer, kind="vargrad", samples=2).explain(inputs)
        tf_ig2.smooth(explainer, kind="smoothgrad_sq", samples=2).explain(inputs)
    assert not [item for item in caught if issubclass(item.category, (CompletenessWarning, DegenerateWarning))]
    with pytest.warns(CompletenessWarning) as records:
        tf_ig2.smooth(explainer, samples=2).explain(inputs)
    assert records[0].filename == __file__
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tf_ig2.smooth(explainer, samples=2).explain(inputs)  # once per explainer
    assert not [item for item in caught if issubclass(item.category, CompletenessWarning)]


def test_the_tunnel_has_the_explainers_interface():
    model = tanh_mlp()
    explainer = tf_ig2.IntegratedGradients(model, steps=STEPS, batch_size=4)
    tunnel = tf_ig2.smooth(explainer)
    assert isinstance(tunnel, NoiseTunnel) and tunnel.explainer is explainer
    assert (tunnel.kind, tunnel.samples, tunnel.noise, tunnel.seed) == (
        defaults.SMOOTH_KIND, defaults.SMOOTH_SAMPLES, defaults.SMOOTH_NOISE, defaults.SMOOTH_SEED)
    assert tunnel.method == "ig" and tunnel.reference_name == "baselines" and tunnel.model is model
    assert tunnel.batch_size == 4
    inputs = np.random.default_rng(11).normal(size=(2, 6)).astype(np.float32)
    small = tf_ig2.smooth(explainer, samples=2)
    np.testing.assert_array_equal(small.explain(inputs, baselines=0.5).attributions,
                                  small.explain(inputs, 0.5).attributions)
    assert "NoiseTunnel(IntegratedGradients, kind='smoothgrad'" in repr(tunnel)
    assert "smooth" in dir(tf_ig2) and "smooth" in tf_ig2.__all__


# -- errors ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("options, error, message", [
    ({"samples": 0}, ValueError, "Received: samples=0"),
    ({"samples": 2.0}, TypeError, "Received: samples=2.0"),
    ({"noise": -0.1}, ValueError, "Received: noise=-0.1"),
    ({"noise": float("nan")}, ValueError, "Received: noise=nan"),
    ({"noise": "0.1"}, TypeError, "Received: noise='0.1'"),
    ({"kind": "smoothgrad_squared"}, ValueError, "Received: kind='smoothgrad_squared'"),
    ({"kind": None}, TypeError, "Received: kind=None"),
    ({"seed": -1}, ValueError, "Received: seed=-1"),
    ({"seed": True}, TypeError, "Received: seed=True"),
])
def test_settings_are_checked_by_name(options, error, message):
    with pytest.raises(error, match=message.replace("(", r"\(").replace(".", r"\.")):
        SmoothSettings(**options)
    with pytest.raises(error, match=message.replace("(", r"\(").replace(".", r"\.")):
        tf_ig2.smooth(tf_ig2.IntegratedGradients(tanh_mlp(), steps=STEPS), **options)


def test_settings_from_a_mapping():
    assert SmoothSettings.from_options({"kind": "vargrad", "samples": 3}).as_dict() == {
        "kind": "vargrad", "samples": 3, "noise": defaults.SMOOTH_NOISE, "seed": defaults.SMOOTH_SEED}
    with pytest.raises(TypeError, match=r"unknown key\(s\) \['stdev'\]"):
        SmoothSettings.from_options({"stdev": 0.1})
    with pytest.raises(TypeError, match="Received: smooth='vargrad'"):
        SmoothSettings.from_options("vargrad")


def test_refusals():
    model = tanh_mlp()
    with pytest.raises(TypeError, match="`explainer` must be an explainer of a registered method"):
        tf_ig2.smooth(model)
    tunnel = tf_ig2.smooth(tf_ig2.IntegratedGradients(model, steps=STEPS))
    with pytest.raises(TypeError, match="noise tunnel already"):
        tf_ig2.smooth(tunnel)
    inputs = np.zeros((2, 6), np.float32)
    with pytest.raises(TypeError, match="Method 'ig2' needs `references`"):
        tf_ig2.smooth(tf_ig2.IG2(model, steps=STEPS)).explain(inputs)
    with pytest.raises(TypeError, match="Method 'ig2' takes `references`, not `baselines`"):
        tf_ig2.smooth(tf_ig2.IG2(model, steps=STEPS)).explain(inputs, baselines=inputs)
    with pytest.raises(TypeError, match="given twice"):
        tunnel.explain(inputs, 0.0, baselines=0.0)
    with pytest.raises(ValueError, match="`inputs` must lie inside `value_range`"):
        tf_ig2.smooth(tf_ig2.IG2(model, steps=STEPS, value_range=(0.0, 1.0))).explain(inputs - 1, inputs[:1])


def test_token_ids_are_refused_naming_input_layer():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((5,), dtype="int32"), keras.layers.Embedding(20, 4, name="embedding"),
                              keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(2)])
    explainer = tf_ig2.IntegratedGradients(model, steps=STEPS, input_layer="embedding")
    ids = np.ones((2, 5), np.int32)
    with pytest.raises(ValueError, match="through `input_layer`.*Received: input_layer='embedding'"):
        tf_ig2.smooth(explainer).explain(ids, np.zeros((1, 5), np.int32))


@pytest.mark.parametrize("name", ["gradient", "ig"])
def test_methods_without_required_references_smooth_without_them(name):
    """SmoothGrad proper (the smoothed plain gradient), called without baselines: on a linear model the
    gradient is the weight row w_c for every copy, so smoothgrad is w_c exactly; IG defaults to a zero
    baseline: w_c * mean_s x_s."""
    model = linear_model()
    weights, _ = model.get_weights()
    rng = np.random.default_rng(3)
    inputs = rng.normal(size=(N, 5)).astype(np.float32)
    targets = np.array([0, 2, 1])
    explainer = tf_ig2.methods.get_method(name).build(model)
    smoothed = tf_ig2.smooth(explainer, samples=SAMPLES, noise=NOISE, seed=SEED).explain(inputs, targets=targets)
    w = weights[:, targets].T.astype(np.float64)
    expected = w if name == "gradient" else w * noisy_copies(inputs).astype(np.float64).mean(axis=1)
    np.testing.assert_allclose(smoothed.attributions, expected, rtol=1e-5, atol=1e-6 * scale(expected))
