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


#: Names of files and folders a user may keep in a results folder: lookalikes of every name tf_ig2
#: writes, in the folder itself and below it, hidden files, nested and empty folders.
FOREIGN_NAMES = (
    "images.00000.npy", "frames.00000.npy", "labels.00000.npy", "frames.00000.npy.tmp", "notes.txt", ".hidden",
    ".tf_ig2.notes", "attributions.npz", "attributions.merged.npz", "overlay_999.png", "summary.json.bak",
    "sub/attributions.00000.npy", "sub/index.json", "sub/attributions.npy", "shards/frames.00000.npy",
    "shards/notes.txt", "nested/deep/delta.00003.npy", "nested/deep/.hidden", "explanation/notes.md",
    "logs/ig2/mine.txt",
)


def plant_foreign(folder, names=FOREIGN_NAMES, seed=0):
    """Writes a random-content file at each of ``names`` below ``folder`` (and an empty folder)."""
    rng = np.random.default_rng(seed)
    for name in names:
        path = os.path.join(folder, *name.split("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(rng.bytes(int(rng.integers(1, 300))))
    os.makedirs(os.path.join(folder, "empty_folder"), exist_ok=True)


def tree(folder, only=None):
    """Every file (its sha1) and folder below ``folder``, hidden ones included; ``only``: these paths."""
    import hashlib

    found = {}
    for root, folders, names in os.walk(folder):
        for name in folders:
            found[os.path.relpath(os.path.join(root, name), folder).replace(os.sep, "/")] = "<folder>"
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as handle:
                found[os.path.relpath(path, folder).replace(os.sep, "/")] = hashlib.sha1(handle.read()).hexdigest()
    if only is not None:
        kept = set(only) | {os.path.dirname(name) for name in only} | {"empty_folder"}
        kept |= {"/".join(name.split("/")[:depth]) for name in only for depth in range(1, name.count("/") + 1)}
        found = {name: value for name, value in found.items() if name in kept}
    return found


def visible(folder):
    """The sorted entries of ``folder`` without the manifest tf_ig2 keeps of the files it wrote there."""
    return sorted(name for name in os.listdir(folder) if name != ".tf_ig2.files.json")


#: The repository's root folder (the one holding tf_ig2/).
REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def read_run(run_dir):
    """Every event of a TensorBoard run folder, read back by TensorBoard's own reader."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(run_dir), size_guidance={"images": 0, "tensors": 0, "scalars": 0})
    accumulator.Reload()
    return accumulator


def run_cli(arguments, capsys):
    """``tf-ig2 ARGUMENTS`` in this process: ``(exit status, stdout, stderr)``."""
    from tf_ig2.cli import command

    status = command.main([str(argument) for argument in arguments])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def digits():
    """scikit-learn's digits as ``(n, 8, 8, 1)`` float32 images in [0, 1] and int64 labels."""
    from sklearn.datasets import load_digits

    data = load_digits()
    return (data.images / 16.0).astype(np.float32)[..., None], data.target.astype(np.int64)


def relu_digits_cnn(seed=0):
    """A small ReLU CNN for 8x8 digits ending in a softmax, compiled for training with a callback."""
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(8, 3, activation="relu", name="conv"),
        keras.layers.Flatten(name="flatten"),
        keras.layers.Dense(16, activation="relu", name="features"),
        keras.layers.Dense(10, activation="softmax", name="probabilities"),
    ])
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    return model
