"""Running an explainer's pairs on the replicas of a ``tf.distribute`` strategy.

For the duration of :func:`distributed`, each compiled per-pair function of the explainer runs
through :class:`DistributedPairs`: a chunk of (input, reference) pairs is split evenly between the
replicas (``strategy.run``) and gathered back in order (``strategy.gather``), so the results are
those of one device, in the same order. With several workers, :func:`agree_on_start` shares the
chief's view of the results folder with every worker.
"""

from __future__ import annotations

import contextlib
import weakref
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import numpy as np
import tensorflow as tf

from tf_ig2.methods.base import PairExplainer


def resolve_strategy(strategy: Any) -> Optional[tf.distribute.Strategy]:
    """``strategy``, or the one whose scope is active when it is ``None`` (else ``None``).

    Raises:
        TypeError: If ``strategy`` is neither ``None`` nor a strategy.
    """
    if strategy is None:
        return tf.distribute.get_strategy() if tf.distribute.has_strategy() else None
    if not isinstance(strategy, tf.distribute.Strategy):
        raise TypeError(f"`strategy` must be a tf.distribute.Strategy or None. Received: {type(strategy).__name__}")
    return strategy


def is_chief(strategy: Optional[tf.distribute.Strategy]) -> bool:
    """Whether this worker writes the results (the only one, or the chief of several)."""
    return bool(getattr(strategy.extended, "should_checkpoint", True)) if strategy is not None else True


#: The distributed wrappers of each explainer's compiled functions, kept across calls so that a
#: second call does not trace again; an entry goes with its explainer.
_DISTRIBUTED: "weakref.WeakKeyDictionary[PairExplainer, Dict[Tuple[int, int], DistributedPairs]]" = (
    weakref.WeakKeyDictionary())


@contextlib.contextmanager
def distributed(explainer: PairExplainer, strategy: Optional[tf.distribute.Strategy]) -> Iterator[None]:
    """Routes the explainer's per-pair calls through ``strategy``'s replicas for the block's duration.

    Every explainer runs its compiled per-pair functions through its ``pair_wrapper``; for the
    block, that wrapper hands back a :class:`DistributedPairs` version of each.
    """
    if strategy is None or strategy.num_replicas_in_sync == 1:
        yield
        return
    wrappers = _DISTRIBUTED.setdefault(explainer, {})

    def distribute(function: Callable) -> Callable:
        key = (id(function), id(strategy))
        if key not in wrappers:
            wrappers[key] = DistributedPairs(strategy, function)
        return wrappers[key]

    previous = explainer.pair_wrapper
    explainer.pair_wrapper = distribute if previous is None else (lambda function: distribute(previous(function)))
    try:
        yield
    finally:
        explainer.pair_wrapper = previous


class DistributedPairs:
    """A per-pair function spread over a strategy's replicas, results gathered back in order.

    A chunk of P pairs is padded (with copies of its first pair) to ``capacity``, a multiple of
    the replica count, so that the compiled step keeps one shape; replica i explains the i-th
    slice of every argument and ``strategy.gather`` concatenates the slices in replica order.
    """

    def __init__(self, strategy: tf.distribute.Strategy, function: Callable):
        self.strategy = strategy
        self.replicas = strategy.num_replicas_in_sync
        self.capacity = 0
        self.function = function  # with self.strategy: their ids stay unique while cached

        structure: List[Any] = []  # the outputs' nesting, recorded while tracing
        layout: List[Tuple[int, ...]] = []  # per packed output: its shape per pair

        def replica_step(*arguments):
            """One replica's pairs; float32 outputs of known shape are packed into one (p, total) tensor."""
            outputs = function(*arguments)
            leaves = tf.nest.flatten(outputs)
            layout.clear()
            structure[:] = [outputs]
            if any(leaf.dtype != tf.float32 or not leaf.shape[1:].is_fully_defined() for leaf in leaves):
                return outputs
            layout.extend(tuple(leaf.shape[1:]) for leaf in leaves)
            return tf.concat([tf.reshape(leaf, [-1, int(np.prod(shape, dtype=np.int64))])
                              for leaf, shape in zip(leaves, layout)], axis=1)

        @tf.function(autograph=False)  # no tensor-valued branching here (see engine.compiled_model)
        def step(*arguments):
            outputs = strategy.run(replica_step, args=arguments)
            # One collective for all outputs. (Strategy.gather on a dict keeps only the first replica's
            # values in TF 2.21, so a dict is gathered tensor by tensor.)
            gathered = tf.nest.map_structure(lambda value: strategy.gather(value, axis=0), outputs)
            if not layout:
                return gathered
            leaves, offset = [], 0
            for shape in layout:
                size = int(np.prod(shape, dtype=np.int64))
                leaves.append(tf.reshape(gathered[:, offset:offset + size], [-1, *shape]))
                offset += size
            return tf.nest.pack_sequence_as(structure[0], leaves)

        self.step = step

    def __call__(self, *arguments: Any) -> Dict[str, Any]:
        """Runs the pairs of ``arguments`` (tensors, or lists of them, of P pairs each) on the replicas."""
        count = int(tf.nest.flatten(arguments)[0].shape[0])
        if count > self.capacity:
            self.capacity = -(-count // self.replicas) * self.replicas
        share = self.capacity // self.replicas

        def spread(values: tf.Tensor) -> Any:
            if count < self.capacity:
                values = tf.concat([values, tf.repeat(values[:1], self.capacity - count, axis=0)], axis=0)
            return self.strategy.experimental_distribute_values_from_function(
                lambda context: values[context.replica_id_in_sync_group * share:
                                       (context.replica_id_in_sync_group + 1) * share])

        outputs = self.step(*tf.nest.map_structure(spread, list(arguments)))
        return tf.nest.map_structure(lambda value: value[:count], outputs)


def agree_on_start(strategy: tf.distribute.Strategy, state: Tuple[int, int, int]) -> Tuple[int, int, int]:
    """The chief's (replica 0's) ``(failed, complete, finished inputs)``, shared with every worker."""
    values = strategy.experimental_distribute_values_from_function(
        lambda context: tf.constant(state if context.replica_id_in_sync_group == 0 else (0, 0, 0), tf.int64))
    failed, complete, start = (int(value) for value in strategy.reduce(tf.distribute.ReduceOp.SUM, values, axis=None))
    return failed, complete, start
