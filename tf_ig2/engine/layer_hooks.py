"""Per-thread layer hooks that leave the user's model unchanged for everyone else.

A :class:`~tf_ig2.engine.model_view.ModelView` needs to read a layer's input or output during a forward
pass, run a final softmax/sigmoid layer as the identity, or substitute an embedding layer's
output. It does so with *hooks* that are active only in the thread that asked for them and only
for the duration of a ``with active(...)`` block.

To reach the layer, a dispatcher is placed on the layer instance as its ``call`` while at least
one thread holds hooks on it (reference counted under a lock). The dispatcher looks up the
calling thread's hooks and, when there are none, calls the original ``call`` unchanged: other
threads, ``model.predict``, tracing by other ``tf.function`` objects and saving see the model as
it is. The last thread to leave removes the dispatcher and restores the layer's ``__dict__``.
No weight, activation or config of the model is ever changed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from typing import Any, Callable, Dict, Iterator, List, Optional

_LOCK = threading.Lock()
_LOCAL = threading.local()


@dataclasses.dataclass
class Hook:
    """What to do when the hooked layer runs in the thread that installed the hook.

    Attributes:
        record_input: Key under which to store the layer's first positional input, or ``None``.
        record_output: Key under which to store what the layer returns (after ``replace``).
        replace: ``None`` to run the layer as usual, or ``replace(original_call, args, kwargs)``
            returning what the layer returns instead.
    """

    record_input: Optional[str] = None
    record_output: Optional[str] = None
    replace: Optional[Callable[[Callable[..., Any], tuple, dict], Any]] = None


class _Dispatcher:
    """Stands in for a layer's ``call``: runs the calling thread's hook, or the original call."""

    def __init__(self, layer: Any):
        self._layer_id = id(layer)
        self.had_own = "call" in layer.__dict__
        self.original = layer.call
        self.users = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        frame = getattr(_LOCAL, "frame", None)
        hook = frame.hooks.get(self._layer_id) if frame is not None else None
        if hook is None:
            return self.original(*args, **kwargs)
        if hook.record_input is not None:
            frame.store[hook.record_input] = args[0] if args else next(iter(kwargs.values()))
        if hook.replace is not None:
            result = hook.replace(self.original, args, kwargs)
        else:
            result = self.original(*args, **kwargs)
        if hook.record_output is not None:
            frame.store[hook.record_output] = result
        return result


@dataclasses.dataclass
class _Frame:
    hooks: Dict[int, Hook]
    store: Dict[str, Any]


def _install(layer: Any) -> None:
    with _LOCK:
        dispatcher = layer.__dict__.get("call")
        if not isinstance(dispatcher, _Dispatcher):
            dispatcher = _Dispatcher(layer)
            object.__setattr__(layer, "call", dispatcher)
        dispatcher.users += 1


def _uninstall(layer: Any) -> None:
    with _LOCK:
        dispatcher = layer.__dict__.get("call")
        if not isinstance(dispatcher, _Dispatcher):
            return
        dispatcher.users -= 1
        if dispatcher.users <= 0:
            object.__delattr__(layer, "call")
            if dispatcher.had_own:  # a ``call`` the instance itself held before is put back
                object.__setattr__(layer, "call", dispatcher.original)


@contextlib.contextmanager
def active(hooks: List[tuple]) -> Iterator[Dict[str, Any]]:
    """Activates ``[(layer, Hook), ...]`` for the calling thread; yields the store of records.

    Hooks of an enclosing block in the same thread are hidden for the duration of this one.
    """
    frame = _Frame(hooks={id(layer): hook for layer, hook in hooks}, store={})
    layers = []
    previous = getattr(_LOCAL, "frame", None)
    try:
        for layer, _ in hooks:
            _install(layer)
            layers.append(layer)
        _LOCAL.frame = frame
        yield frame.store
    finally:
        _LOCAL.frame = previous
        for layer in reversed(layers):
            _uninstall(layer)


def is_hooked(layer: Any) -> bool:
    """Whether a dispatcher currently sits on ``layer`` (some thread holds hooks on it)."""
    return isinstance(layer.__dict__.get("call"), _Dispatcher)
