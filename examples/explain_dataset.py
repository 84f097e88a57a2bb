"""Explain a whole dataset with IG², resumably, and read the results back.

Run: python examples/explain_dataset.py [--output digits_ig2] [--devices 2] [--stop-after 256]

It trains a small CNN on scikit-learn's digits, then explains every held-out digit streamed from a
``tf.data`` pipeline against references of other classes than the predicted one (as in the IG²
paper), writing results to ``--output`` shard by shard. ``--stop-after`` interrupts the run
after that many inputs, to show that running the command again continues where it stopped.
``--devices 2`` splits the CPU into two logical devices and runs with a ``MirroredStrategy``.
"""

import argparse
import logging
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="digits_ig2", help="results folder (default: digits_ig2)")
    parser.add_argument("--steps", type=int, default=32, help="IG² steps (default 32)")
    parser.add_argument("--references", type=int, default=4, help="references per digit (default 4)")
    parser.add_argument("--devices", type=int, default=1, help="logical CPU devices for a MirroredStrategy")
    parser.add_argument("--stop-after", type=int, default=None, help="stop after this many inputs (a demo)")
    parser.add_argument("--overwrite", action="store_true", help="replace results of other settings")
    return parser.parse_args()


def main() -> None:
    args = parse_arguments()
    if args.devices > 1:  # must happen before TensorFlow touches any device
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * args.devices)
    logging.basicConfig(format="%(message)s")
    logging.getLogger("tf_ig2").setLevel(logging.INFO)  # progress lines when stderr is not a terminal

    import keras
    import numpy as np
    from sklearn.datasets import load_digits

    import tf_ig2
    from tf_ig2.dataset import explain_dataset, load_results

    digits = load_digits()
    images = (digits.images / 16.0).astype("float32")[..., None]  # (1797, 8, 8, 1) in [0, 1]
    labels = digits.target.astype("int64")
    keras.utils.set_random_seed(0)
    order = np.random.permutation(len(images))
    train, test = order[:1200], order[1200:]
    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(images[train], labels[train], epochs=6, batch_size=64, verbose=0)

    # References: for each explained digit, fixed training digits of other classes than its target.
    rng = np.random.default_rng(0)
    pools = {digit: images[train][labels[train] == digit] for digit in range(10)}
    chosen = {digit: pool[rng.choice(len(pool), args.references, replace=False)] for digit, pool in pools.items()}

    def references_for(batch, targets):
        """(B, R, 8, 8, 1): the same answer on every run, as resuming requires."""
        return np.stack([chosen[(int(target) + 1 + index % 9) % 10] for index, target in enumerate(targets)])

    dataset = tf.data.Dataset.from_tensor_slices((images[test], labels[test])).batch(64)
    if args.stop_after is not None:
        def stop(index, element):
            tf.debugging.assert_less(index, tf.constant(args.stop_after, tf.int64), message="stopped on request")
            return element
        dataset = dataset.unbatch().enumerate().map(stop).batch(64)

    strategy = tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(args.devices)]) if args.devices > 1 else None
    explainer = tf_ig2.IG2(model, steps=args.steps, value_range=(0.0, 1.0))
    try:
        result = explain_dataset(explainer, dataset, references_for, args.output, targets="labels",
                                 shard_size=128, strategy=strategy, overwrite=args.overwrite)
    except tf.errors.InvalidArgumentError:
        print(f"stopped after {args.stop_after} inputs as asked; run again without --stop-after to finish")
        return
    print(f"{result.count} digits explained ({result.resumed} kept from an earlier run) in {result.shards} shards; "
          f"{result.inputs_per_second:.1f} inputs/s")

    results = load_results(args.output)
    gap = np.abs(results["target_scores"] - results["counterfactual_scores"])
    relative = np.abs(results["delta"]) / np.maximum(gap, 1e-6)
    print(f"attributions {results['attributions'].shape} ({type(results['attributions']).__name__}), "
          f"median relative completeness error {np.median(relative):.3f}")
    for index in range(3):
        print(f"digit {index}: label {results['labels'][index]}, explained class {results['targets'][index]}, "
              f"logit {results['target_scores'][index]:.2f} -> {results['counterfactual_scores'][index]:.2f} at GradCF")


if __name__ == "__main__":
    main()
