"""Every method end to end on the architectures people explain (slow: real application models).

Each model goes through IG², IG and Guided IG with tiny settings; the checks: attributions of the
input's shape (and structure), finite, float32; the explained score is the pre-activation logit
computed independently from the final layer's weights; the model is unchanged afterwards.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_ig2

pytestmark = pytest.mark.slow

METHODS = {
    "ig2": lambda model, **kw: tf_ig2.IG2(model, steps=3, **kw),
    "ig": lambda model, **kw: tf_ig2.IntegratedGradients(model, steps=3, **kw),
    "guided_ig": lambda model, **kw: tf_ig2.GuidedIG(model, steps=3, **kw),
}


def logits_from(head_owner, head_name, inputs_of_owner):
    """Pre-activation of ``head_name`` (a Dense layer of ``head_owner``) for the owner's inputs."""
    head = head_owner.get_layer(head_name)
    features = keras.Model(head_owner.inputs, head.input)(inputs_of_owner).numpy()
    kernel, bias = (weight.numpy() for weight in head.weights)
    return features @ kernel + bias


def fingerprint(model):
    return [weight.numpy().copy() for weight in model.weights]


def check_everything(model, inputs, references, logits, *, options=None):
    before, predictions = fingerprint(model), model.predict(inputs, verbose=0)
    targets = np.argmax(logits, axis=1)
    for name, build in METHODS.items():
        explainer = build(model, **(options or {}))
        explanation = explainer.explain(inputs, references, targets)
        for attributions, sample in zip(tf.nest.flatten(explanation.attributions), tf.nest.flatten(inputs)):
            assert attributions.shape == np.shape(sample) and attributions.dtype == np.float32, name
            assert np.all(np.isfinite(attributions)), name
        np.testing.assert_allclose(explanation.target_scores, logits[np.arange(len(targets)), targets],
                                   rtol=2e-3, atol=2e-3, err_msg=name)
    for old, new in zip(before, fingerprint(model)):
        np.testing.assert_array_equal(old, new)
    np.testing.assert_allclose(model.predict(inputs, verbose=0), predictions, rtol=1e-5, atol=1e-6)
    assert np.allclose(predictions.sum(axis=1), 1.0, atol=1e-4)  # the model still ends in its softmax


APPLICATIONS = {
    "MobileNetV2": lambda: keras.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, weights=None,
                                                          classes=4),
    "ResNet50": lambda: keras.applications.ResNet50(input_shape=(32, 32, 3), weights=None, classes=4),
    "EfficientNetB0": lambda: keras.applications.EfficientNetB0(input_shape=(32, 32, 3), weights=None, classes=4),
    "ConvNeXtTiny": lambda: keras.applications.ConvNeXtTiny(input_shape=(32, 32, 3), weights=None, classes=4),
}


HEADS = {"ConvNeXtTiny": "convnext_tiny_head_dense"}


@pytest.mark.parametrize("name", sorted(APPLICATIONS))
def test_keras_applications(name):
    keras.utils.set_random_seed(0)
    model = APPLICATIONS[name]()
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 1, (2, 32, 32, 3)).astype(np.float32)
    references = rng.uniform(0, 1, (1, 32, 32, 3)).astype(np.float32)
    head = HEADS.get(name, "predictions")
    assert tf_ig2.IG2(model).representation == f"input of layer '{head}'"
    check_everything(model, images, references, logits_from(model, head, images))


def test_nested_transfer_model_and_nested_full_application():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(1)
    images = rng.uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    references = rng.uniform(0, 255, (1, 32, 32, 3)).astype(np.float32)
    # Transfer learning: a headless base nested in a new model with its own softmax head.
    base = keras.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, include_top=False, weights=None,
                                          pooling="avg")
    inputs = keras.Input((32, 32, 3))
    features = base(keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs))
    head = keras.layers.Dense(3, activation="softmax", name="head")(keras.layers.Dropout(0.2)(features))
    transfer = keras.Model(inputs, head)
    pooled = base(images / 127.5 - 1).numpy()
    kernel, bias = (weight.numpy() for weight in transfer.get_layer("head").weights)
    check_everything(transfer, images, references, pooled @ kernel + bias)
    # A whole application (with its softmax) nested after preprocessing.
    application = keras.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, weights=None, classes=4)
    outer = keras.Input((32, 32, 3))
    nested = keras.Model(outer, application(keras.layers.Rescaling(1 / 255.0)(outer)))
    assert tf_ig2.IG2(nested).representation == "input of layer 'predictions'"
    check_everything(nested, images, references, logits_from(application, "predictions", images / 255.0))


def test_subclassed_model_with_dropout_and_batch_norm():
    class Classifier(keras.Model):
        def __init__(self):
            super().__init__()
            self.conv = keras.layers.Conv2D(6, 3, activation="relu")
            self.norm = keras.layers.BatchNormalization()
            self.pool = keras.layers.GlobalAveragePooling2D()
            self.drop = keras.layers.Dropout(0.5)
            self.out = keras.layers.Dense(3, activation="softmax", name="out")

        def call(self, inputs, training=False):
            return self.out(self.drop(self.pool(self.norm(self.conv(inputs), training=training)), training=training))

    keras.utils.set_random_seed(0)
    model = Classifier()
    rng = np.random.default_rng(2)
    images = rng.random((3, 12, 12, 2)).astype(np.float32)
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(images, np.array([0, 1, 2]), epochs=1, verbose=0)
    pooled = model.pool(model.norm(model.conv(images), training=False)).numpy()
    kernel, bias = (weight.numpy() for weight in model.out.weights)
    check_everything(model, images, rng.random((2, 12, 12, 2)).astype(np.float32), pooled @ kernel + bias)


def test_image_and_vector_model():
    keras.utils.set_random_seed(0)
    image, vector = keras.Input((16, 16, 3), name="image"), keras.Input((5,), name="vector")
    seen = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3, activation="relu")(image))
    joined = keras.layers.Concatenate(name="joined")([seen, keras.layers.Dense(4, activation="relu")(vector)])
    model = keras.Model([image, vector], keras.layers.Dense(3, activation="softmax", name="head")(joined))
    rng = np.random.default_rng(3)
    inputs = [rng.random((2, 16, 16, 3)).astype(np.float32), rng.random((2, 5)).astype(np.float32)]
    references = [rng.random((2, 16, 16, 3)).astype(np.float32), rng.random((2, 5)).astype(np.float32)]
    features = keras.Model(model.inputs, model.get_layer("joined").output)(inputs).numpy()
    kernel, bias = (weight.numpy() for weight in model.get_layer("head").weights)
    check_everything(model, inputs, references, features @ kernel + bias, options={})


TEXT_LENGTH, VOCABULARY = 12, 50


def transformer_classifier():
    ids = keras.Input((TEXT_LENGTH,), dtype="int32")
    embedded = keras.layers.Embedding(VOCABULARY, 16, name="embedding")(ids)
    attended = keras.layers.MultiHeadAttention(num_heads=2, key_dim=8)(embedded, embedded)
    normed = keras.layers.LayerNormalization()(embedded + attended)
    hidden = keras.layers.Dense(16, activation="gelu")(normed)
    pooled = keras.layers.GlobalAveragePooling1D(name="pooled")(keras.layers.LayerNormalization()(normed + hidden))
    return keras.Model(ids, keras.layers.Dense(2, activation="softmax", name="head")(pooled))


def bilstm_classifier():
    ids = keras.Input((TEXT_LENGTH,), dtype="int32")
    embedded = keras.layers.Embedding(VOCABULARY, 8, name="embedding")(ids)
    pooled = keras.layers.Bidirectional(keras.layers.LSTM(6), name="pooled")(embedded)
    return keras.Model(ids, keras.layers.Dense(2, activation="softmax", name="head")(pooled))


@pytest.mark.parametrize("build", [transformer_classifier, bilstm_classifier])
def test_text_models_through_the_embedding(build, tmp_path):
    keras.utils.set_random_seed(0)
    model = build()
    rng = np.random.default_rng(4)
    tokens = rng.integers(1, VOCABULARY, (3, TEXT_LENGTH)).astype(np.int32)
    tokens[0, 8:] = 0
    references = np.zeros((1, TEXT_LENGTH), np.int32)
    head = model.get_layer("head")
    pooled = keras.Model(model.inputs, head.input)(tokens).numpy()
    logits = pooled @ head.kernel.numpy() + head.bias.numpy()
    check_everything(model, tokens, references, logits, options={"input_layer": "embedding"})
    explanation = tf_ig2.IG2(model, steps=3, input_layer="embedding").explain(tokens, references)
    assert np.all(explanation.attributions[0, 8:] == 0.0)  # padding never moves
    # One epoch of training with the callback logging token attributions.
    model.compile("adam", "sparse_categorical_crossentropy")
    callback = tf_ig2.callbacks.IG2Callback((tokens, np.array([0, 1, 0])), references=references[0:1],
                                            input_layer="embedding", steps=3, output_dir=str(tmp_path))
    model.fit(tokens, np.array([0, 1, 0]), epochs=1, verbose=0, callbacks=[callback])
    assert any((tmp_path / "ig2").iterdir())


def test_callback_on_an_application_model(tmp_path):
    keras.utils.set_random_seed(0)
    model = APPLICATIONS["MobileNetV2"]()
    rng = np.random.default_rng(5)
    images = rng.random((4, 32, 32, 3)).astype(np.float32)
    labels = np.array([0, 1, 2, 3])
    model.compile("adam", "sparse_categorical_crossentropy")
    callbacks = [tf_ig2.callbacks.IG2Callback((images[:2], labels[:2]), references=images[2:3], steps=3,
                                              value_range=(0.0, 1.0), output_dir=str(tmp_path)),
                 tf_ig2.callbacks.AttributionCallback("guided_ig", (images[:2], labels[:2]), references=0.0, steps=3,
                                                      output_dir=str(tmp_path))]
    model.fit(images, labels, epochs=1, verbose=0, callbacks=callbacks)
    assert any((tmp_path / "ig2").iterdir()) and any((tmp_path / "guided_ig").iterdir())
    assert model.get_layer("predictions").activation.__name__ == "softmax"
