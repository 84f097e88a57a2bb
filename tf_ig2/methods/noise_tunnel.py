"""A noise tunnel over any registered method: SmoothGrad, its square and VarGrad.

Each input ``x`` (``(N, *S)``) gets ``samples`` noisy copies ``x + eps_s``, ``eps_s ~ N(0, sigma^2)`` per
feature, with ``sigma = noise * (max(x) - min(x))`` per input (Smilkov et al. 2017's noise level, a fraction
of the input's range: PAIR saliency's ``stdev_spread``). The wrapped explainer explains every copy for the
target resolved once on the clean input (the copy's own prediction never changes it) against the clean
input's references. With ``A_s`` the attributions of copy ``s``:

- ``"smoothgrad"``: ``mean_s A_s`` (Smilkov et al., "SmoothGrad: removing noise by adding noise", 2017);
- ``"smoothgrad_sq"``: ``mean_s A_s^2``;
- ``"vargrad"``: ``mean_s A_s^2 - (mean_s A_s)^2``, the population variance (divided by ``samples``, as in
  Captum's ``NoiseTunnel``; Adebayo et al., "Local explanation methods for deep neural networks lack
  sensitivity to parameter values", 2018).

The draws: each call starts ``numpy.random.default_rng(seed)`` afresh and draws float64 standard normals
copy after copy (input 0's ``samples`` copies first), each copy's draws those of its model inputs in order;
for a model with one input they are ``rng.standard_normal((N, samples, *S))``. A copy is
``float32(x + sigma * draws)``, clipped to the explainer's ``value_range`` when it has one (IG²): the
explainer refuses points outside it. Several float inputs each get noise of their own range's size.

The scores: ``target_scores`` are the clean input's ``f_c(x)`` and ``counterfactual_scores`` the mean over
the copies of the wrapped method's. For ``"smoothgrad"``, ``delta`` is the mean of the copies' completeness
errors, ``sum(attributions) - (mean_s f_c(x + eps_s) - counterfactual_scores)``: how well the smoothed
attributions add up to the mean score gap of the copies. It differs from
``sum(attributions) - (target_scores - counterfactual_scores)`` by the smoothing's own shift of the score,
``f_c(x) - mean_s f_c(x + eps_s)``, which no number of steps removes. Squares and variances add up to no score
gap: their ``delta`` is NaN and no completeness warning is given.

The cost is ``samples`` times the wrapped method's. The ``N * samples`` copies are explained
``batch_size // R`` at a time (R references each; all at once when the explainer's ``batch_size`` is
``None``), each chunk one call of the explainer's own ``explain`` and of its compiled function, traced once
(its signature leaves the batch size free). The per-input means and sums of squared deviations are gathered
in float64 as the chunks come (Chan, Golub and LeVeque's pairwise update), so memory does not grow with
``samples``. Token ids read through an ``input_layer`` are refused: noise cannot move them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import numbers
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from tf_ig2 import defaults, validation
from tf_ig2.explanation import Explanation
from tf_ig2.methods import registry

#: What the attributions of the noisy copies are reduced to.
KINDS = ("smoothgrad", "smoothgrad_sq", "vargrad")

#: The Explanation fields computed here; every other array field the wrapped method fills (IG²'s
#: ``representation_distance``) is averaged over the copies, and every other value kept.
_OWN_FIELDS = ("attributions", "counterfactuals", "target_scores", "counterfactual_scores", "delta", "targets",
               "method", "path")


class _Unset:
    """The marker of an argument not given (the wrapped method's default applies)."""

    def __repr__(self) -> str:
        return "<the method's default>"


UNSET: Any = _Unset()


# -- the settings ---------------------------------------------------------------------------------
def _kind(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"`kind` must be one of {KINDS}. Received: kind={value!r}")
    if value not in KINDS:
        raise ValueError(f"`kind` must be one of {KINDS}. Received: kind={value!r}")
    return value


def _noise(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"`noise` must be a number >= 0 (a fraction of each input's range). Received: noise={value!r}")
    if not np.isfinite(float(value)) or float(value) < 0.0:
        raise ValueError(f"`noise` must be a finite number >= 0 (a fraction of each input's range). "
                         f"Received: noise={value!r}")
    return float(value)


def _seed(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`seed` must be a non-negative int. Received: seed={value!r}")
    if value < 0:
        raise ValueError(f"`seed` must be a non-negative int. Received: seed={value!r}")
    return int(value)


@dataclasses.dataclass(frozen=True)
class SmoothSettings:
    """The noise tunnel's settings, checked when made (no model needed).

    Attributes:
        kind: ``"smoothgrad"``, ``"smoothgrad_sq"`` or ``"vargrad"`` (:data:`KINDS`).
        samples: Noisy copies per input, an int >= 1.
        noise: The noise's standard deviation as a fraction of each input's range ``max(x) - min(x)``,
            a number >= 0.
        seed: The seed of the draws, an int >= 0.

    Raises:
        TypeError, ValueError: Naming the setting, what it must be and what it was.
    """

    kind: str = defaults.SMOOTH_KIND
    samples: int = defaults.SMOOTH_SAMPLES
    noise: float = defaults.SMOOTH_NOISE
    seed: int = defaults.SMOOTH_SEED

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", _kind(self.kind))
        object.__setattr__(self, "samples", validation.positive_int("samples", self.samples))
        object.__setattr__(self, "noise", _noise(self.noise))
        object.__setattr__(self, "seed", _seed(self.seed))

    @classmethod
    def from_options(cls, options: Any, name: str = "smooth") -> "SmoothSettings":
        """Settings from a mapping of some of ``kind``, ``samples``, ``noise`` and ``seed`` (the rest default).

        Raises:
            TypeError: If ``options`` is no mapping or holds another key; as the constructor otherwise.
        """
        if not isinstance(options, Mapping):
            raise TypeError(f"`{name}` must be a dict of noise tunnel settings {cls.names()}. "
                            f"Received: {name}={options!r}")
        unknown = sorted(set(options) - set(cls.names()), key=str)
        if unknown:
            raise TypeError(f"`{name}` takes the noise tunnel settings {cls.names()}. Received: unknown key(s) "
                            f"{unknown}")
        return cls(**options)

    @classmethod
    def names(cls) -> Tuple[str, ...]:
        """The settings' names."""
        return tuple(field.name for field in dataclasses.fields(cls))

    def as_dict(self) -> Dict[str, Any]:
        """``{name: value}`` of every setting."""
        return dataclasses.asdict(self)


# -- moments gathered chunk by chunk ----------------------------------------------------------------
class _Moments:
    """Per input, the count, mean and sum of squared deviations (float64) of per-copy arrays ``(P, ...)``."""

    def __init__(self, count: int):
        self.count = np.zeros(count, np.int64)
        self.mean: Optional[np.ndarray] = None
        self.squares: Optional[np.ndarray] = None

    def add(self, owners: np.ndarray, values: np.ndarray) -> None:
        """Adds the values of P copies; ``owners`` ``(P,)``, the input of each copy, never decreases."""
        values = np.asarray(values, np.float64)
        if self.mean is None:
            self.mean = np.zeros((len(self.count),) + values.shape[1:])
            self.squares = np.zeros_like(self.mean)
        starts = np.flatnonzero(np.r_[True, owners[1:] != owners[:-1]])
        inputs = owners[starts]
        sizes = np.diff(np.r_[starts, len(owners)])
        shape = (-1,) + (1,) * (values.ndim - 1)
        means = np.add.reduceat(values, starts, axis=0) / sizes.reshape(shape)
        squares = np.add.reduceat((values - np.repeat(means, sizes, axis=0)) ** 2, starts, axis=0)
        before, added = self.count[inputs].reshape(shape), sizes.reshape(shape)
        total = before + added
        difference = means - self.mean[inputs]
        self.mean[inputs] += difference * (added / total)
        self.squares[inputs] += squares + difference ** 2 * (before * added / total)
        self.count[inputs] += sizes

    def reduced(self, kind: str) -> np.ndarray:
        """The mean, the mean of squares or the population variance, as float32."""
        if kind == "smoothgrad":
            return self.mean.astype(np.float32)
        variance = self.squares / self.count.reshape((-1,) + (1,) * (self.squares.ndim - 1))
        return (variance if kind == "vargrad" else variance + self.mean ** 2).astype(np.float32)


# -- the wrapped explainer ----------------------------------------------------------------------------
class _EveryKind(set):
    """A set holding every warning kind: while the copies are explained, the explainer's warnings count as given."""

    def __contains__(self, item: Any) -> bool:
        return True


@contextlib.contextmanager
def _quiet(explainer: Any) -> Iterator[None]:
    """The explainer gives no warning about the noisy copies; the smoothed result is diagnosed instead."""
    given = explainer._warned
    explainer._warned = _EveryKind()
    try:
        yield
    finally:
        explainer._warned = given


def _registered(explainer: Any) -> registry.Method:
    """The registered method of ``explainer``, an explainer of this package.

    Raises:
        TypeError: For a noise tunnel, or anything but an explainer of a registered method.
    """
    from tf_ig2.methods.base import PairExplainer  # TensorFlow: an explainer exists, so it is imported

    if isinstance(explainer, NoiseTunnel):
        raise TypeError("`explainer` is a noise tunnel already; smooth the explainer it wraps "
                        f"(`.explainer`) once. Received: {explainer!r}")
    if not isinstance(explainer, PairExplainer) or getattr(explainer, "method", None) not in registry.METHODS:
        raise TypeError(f"`explainer` must be an explainer of a registered method ({', '.join(registry.METHODS)}), "
                        f"e.g. tf_ig2.IntegratedGradients(model). Received: {type(explainer).__name__}")
    return registry.METHODS[explainer.method]


def _refuse_token_inputs(explainer: Any) -> None:
    """Raises a ``ValueError`` when the explainer reads token ids through an ``input_layer``."""
    view = explainer.view
    embedded = [f"{name!r} (through layer {getattr(layer, 'name', layer)!r})"
                for name, layer in zip(view.inputs.names, view.input_layers) if layer is not None]
    if embedded:
        given = getattr(getattr(explainer, "settings", None), "input_layer", None)
        raise ValueError(f"The noise tunnel adds Gaussian noise to float inputs, and the explainer reads model "
                         f"input(s) {', '.join(embedded)} as token ids through `input_layer`, which noise cannot "
                         f"move. Explain token inputs without smoothing. Received: input_layer={given!r}")


def _references(explainer: Any, entry: registry.Method, references: Any, baselines: Any) -> Any:
    """The references given, by position or by the method's keyword, else (for a method that does not
    require them, as its registry entry declares) the zero baseline the baseline methods default to."""
    keyword = entry.reference_keyword
    if baselines is not UNSET:
        if keyword != "baselines":
            raise TypeError(f"Method {entry.name!r} takes `{keyword}`, not `baselines`. "
                            f"Received: baselines={validation.describe(baselines)}")
        if references is not UNSET:
            raise TypeError(f"The baselines were given twice, by position and as `baselines`. Received: "
                            f"{validation.describe(references)} and baselines={validation.describe(baselines)}")
        return baselines
    if references is not UNSET:
        return references
    if entry.references_required:
        raise TypeError(f"Method {entry.name!r} needs `{keyword}`. Received: no {keyword}")
    return defaults.REFERENCE_CONSTANT


def _value_ranges(explainer: Any, batch: Any) -> List[Optional[Tuple[np.ndarray, np.ndarray]]]:
    """Per model input, the explainer's ``value_range`` pair or ``None``; the clean inputs checked against it."""
    value = getattr(explainer, "value_range", None)
    count = len(batch.points)
    if value is None:
        return [None] * count
    ranges = [value] if count == 1 else list(value)
    names = explainer.view.inputs.names
    for index, (bound, points) in enumerate(zip(ranges, batch.points)):
        validation.fits_value_range("inputs" if count == 1 else f"inputs[{names[index]!r}]", points, bound,
                                    points.shape[1:])
    return ranges


def _clean_scores(explainer: Any, batch: Any, targets: Any) -> np.ndarray:
    """``(N,)`` (or ``(N, T)``) float32 target scores ``f_c(x)`` of the clean inputs (one forward pass)."""
    import tensorflow as tf

    from tf_ig2.engine.model_view import target_scores

    points = batch.points
    outputs = explainer._compiled.outputs(points if len(points) > 1 else points[0])
    spec = targets if callable(targets) else tf.constant(targets, tf.int32)
    return np.asarray(target_scores(outputs, spec), np.float32)


# -- the noisy copies -------------------------------------------------------------------------------
def _noisy(points: np.ndarray, spread: np.ndarray, draws: np.ndarray,
           bound: Optional[Tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """``float32(points + spread * draws)`` ``(P, *S)``, clipped to ``bound``; ``spread`` ``(P,)``."""
    copies = (points.astype(np.float64) + spread.reshape((-1,) + (1,) * (points.ndim - 1)) * draws)
    copies = copies.astype(np.float32)
    if bound is not None:
        copies = np.clip(copies, bound[0], bound[1]).astype(np.float32, copy=False)
    return copies


def _copies_per_call(explainer: Any, total: int, references: int) -> int:
    """How many copies one call of the wrapped explainer takes: its ``batch_size`` pairs (all when ``None``)."""
    size = explainer.batch_size
    return total if size is None else max(1, size // references)


def _explain_chunk(explainer: Any, copies: List[np.ndarray], references: List[np.ndarray], targets: Any,
                   owners: np.ndarray) -> Explanation:
    """The wrapped explainer's explanation of one chunk of copies, its warnings held back."""
    try:
        with _quiet(explainer):
            return explainer.explain(explainer._pack(copies), explainer._pack(references), targets)
    except ValueError as error:
        raise ValueError(f"While explaining the noisy copies of inputs {int(owners[0])} to {int(owners[-1])}: "
                         f"{error}") from error


def _gather(moments: Dict[str, List[_Moments]], kept: Dict[str, Any], part: Explanation, owners: np.ndarray,
            explainer: Any, count: int) -> None:
    """Adds one chunk's per-copy results to the per-input moments (``kept``: non-array extra fields)."""
    flatten = explainer.view.inputs.flatten
    values = {"attributions": flatten("attributions", part.attributions),
              "counterfactuals": flatten("counterfactuals", part.counterfactuals),
              "scores": [part.target_scores], "counterfactual_scores": [part.counterfactual_scores],
              "delta": [part.delta]}
    for field in dataclasses.fields(Explanation):
        value = getattr(part, field.name)
        if field.name in _OWN_FIELDS:
            continue
        if isinstance(value, np.ndarray):
            values[field.name] = [value]
        else:
            kept[field.name] = value
    for name, arrays in values.items():
        entries = moments.setdefault(name, [_Moments(count) for _ in arrays])
        for entry, array in zip(entries, arrays):
            entry.add(owners, array)


def _explain_copies(explainer: Any, settings: SmoothSettings, batch: Any,
                    bounds: Sequence[Optional[Tuple[np.ndarray, np.ndarray]]],
                    targets: Any) -> Tuple[Dict[str, List[_Moments]], Dict[str, Any]]:
    """Explains the ``N * samples`` noisy copies chunk by chunk; returns their per-input moments.

    Args:
        explainer: The wrapped explainer.
        settings: The noise tunnel's settings.
        batch: The clean inputs ``(N, *S_i)`` and references ``(N or 1, R, *S_i)``, per model input.
        bounds: Per model input, the ``value_range`` the copies are clipped to, or ``None``.
        targets: ``(N,)`` or ``(N, T)`` class indices, or a callable.

    Returns:
        ``(moments, kept)``: per result (``attributions``, ``counterfactuals``, ``scores``,
        ``counterfactual_scores``, ``delta`` and the method's extra arrays) one :class:`_Moments` per
        model input (one for the others); the method's non-array extras.
    """
    count, samples = batch.count, settings.samples
    total = count * samples
    shapes = [points.shape[1:] for points in batch.points]
    sizes = [int(np.prod(shape, dtype=np.int64)) for shape in shapes]
    spreads = [settings.noise * (flat.max(axis=1).astype(np.float64) - flat.min(axis=1))
               for flat in (points.reshape(count, -1) for points in batch.points)]
    generator = np.random.default_rng(settings.seed)
    per_call = _copies_per_call(explainer, total, batch.references[0].shape[1])
    moments: Dict[str, List[_Moments]] = {}
    kept: Dict[str, Any] = {}
    for start in range(0, total, per_call):
        owners = np.arange(start, min(start + per_call, total)) // samples
        draws = np.split(generator.standard_normal((len(owners), sum(sizes))), np.cumsum(sizes)[:-1], axis=1)
        copies = [_noisy(points[owners], spread[owners], draw.reshape((-1,) + shape), bound)
                  for points, spread, draw, shape, bound in zip(batch.points, spreads, draws, shapes, bounds)]
        references = [values[0] if len(values) == 1 else values[owners] for values in batch.references]
        part = _explain_chunk(explainer, copies, references, targets if callable(targets) else targets[owners],
                              owners)
        _gather(moments, kept, part, owners, explainer, count)
    return moments, kept


# -- the smoothed explanation -------------------------------------------------------------------------
def _smoothed(explainer: Any, settings: SmoothSettings, inputs: Any, references: Any, baselines: Any,
              targets: Any, top_k: Optional[int]) -> Explanation:
    """The noise tunnel's explanation (see the module docstring); diagnosed like the wrapped method's."""
    entry = _registered(explainer)
    _refuse_token_inputs(explainer)
    given = _references(explainer, entry, references, baselines)
    batch = explainer._prepare(inputs, given, allow_scalar=entry.scalar_reference)
    bounds = _value_ranges(explainer, batch)
    class_indices, score = explainer._batch_targets(targets, batch, top_k)
    resolved = score if class_indices is None else class_indices
    moments, kept = _explain_copies(explainer, settings, batch, bounds, resolved)
    target_scores = _clean_scores(explainer, batch, resolved)
    attributions = [entry_moments.reduced(settings.kind) for entry_moments in moments["attributions"]]
    counterfactuals = [entry_moments.reduced("smoothgrad") for entry_moments in moments["counterfactuals"]]
    delta = (moments["delta"][0].reduced("smoothgrad") if settings.kind == "smoothgrad"
             else np.full(target_scores.shape, np.nan, np.float32))
    extras = {name: values[0].reduced("smoothgrad") for name, values in moments.items()
              if name not in _OWN_FIELDS + ("scores",)}
    explanation = Explanation(
        attributions=explainer._pack(attributions), counterfactuals=explainer._pack(counterfactuals),
        target_scores=target_scores, counterfactual_scores=moments["counterfactual_scores"][0].reduced("smoothgrad"),
        delta=delta, targets=class_indices, method=entry.name, **extras, **kept)
    # Zero attributions of a moved input mean no gradient reached it, whatever the kind: their squares say so.
    squares = [entry_moments.reduced("smoothgrad_sq") for entry_moments in moments["attributions"]]
    explainer._diagnose(explanation, squares, counterfactuals, batch)
    return explanation


def noise_tunnel(explainer: Any, inputs: Any, references: Any = UNSET, targets: Any = None, *,
                 top_k: Optional[int] = None, baselines: Any = UNSET, kind: str = defaults.SMOOTH_KIND,
                 samples: int = defaults.SMOOTH_SAMPLES, noise: float = defaults.SMOOTH_NOISE,
                 seed: int = defaults.SMOOTH_SEED) -> Explanation:
    """Explains ``inputs`` with ``explainer`` through a noise tunnel: SmoothGrad, its square or VarGrad.

    Args:
        explainer: An explainer of a registered method (:class:`~tf_ig2.IG2`,
            :class:`~tf_ig2.IntegratedGradients`, :class:`~tf_ig2.GuidedIG`, ...) of a model with float inputs.
        inputs: ``(N, *S)`` floats (a list or dict of ``(N, *S_i)`` arrays for several inputs).
        references: The references (or baselines) as the wrapped ``explain`` takes them, by position;
            for methods with baselines also ``baselines=``; omitted, the method's default (IG's ``0.0``).
        targets: As the wrapped ``explain``: ``None`` (each clean input's predicted class), an int,
            ``(N,)`` or ``(N, T)`` ints, ``"top-K"`` or a callable; resolved once, on the clean inputs.
        top_k: K, to explain each clean input's K highest logits.
        baselines: The baselines by name, for methods taking ``baselines``.
        kind: ``"smoothgrad"`` (mean), ``"smoothgrad_sq"`` (mean of squares) or ``"vargrad"``
            (population variance) of the copies' attributions.
        samples: Noisy copies per input.
        noise: The noise's standard deviation as a fraction of each input's ``max(x) - min(x)``.
        seed: The seed of the draws (``numpy.random.default_rng(seed)``, started afresh by each call).

    Returns:
        An :class:`~tf_ig2.Explanation` like the wrapped method's (``method`` its name): attributions
        ``(N, *S)`` (``(N, T, *S)`` for T targets), ``counterfactuals`` ``(N, R, *S)`` averaged over the
        copies, ``target_scores`` of the clean inputs, ``counterfactual_scores`` averaged over the copies,
        ``delta`` the copies' mean completeness error for ``"smoothgrad"`` and NaN for the other kinds,
        and the method's extra arrays (IG²'s ``representation_distance``) averaged over the copies.

    Raises:
        TypeError, ValueError: On a malformed setting (naming it), an explainer of no registered
            method, token inputs read through an ``input_layer``, or what the wrapped ``explain`` refuses.

    Warns:
        DegenerateWarning, CompletenessWarning: Once per explainer, for the smoothed result (the
            copies' own explanations give none).
    """
    settings = SmoothSettings(kind=kind, samples=samples, noise=noise, seed=seed)
    return _smoothed(explainer, settings, inputs, references, baselines, targets, top_k)


class NoiseTunnel:
    """An explainer explaining through a noise tunnel: the wrapped explainer and the tunnel's settings.

    Made by :func:`smooth`; its :meth:`explain` is :func:`noise_tunnel` with these settings.

    Args:
        explainer: An explainer of a registered method.
        kind, samples, noise, seed: As for :func:`noise_tunnel`.
    """

    def __init__(self, explainer: Any, *, kind: str = defaults.SMOOTH_KIND, samples: int = defaults.SMOOTH_SAMPLES,
                 noise: float = defaults.SMOOTH_NOISE, seed: int = defaults.SMOOTH_SEED):
        self.settings = SmoothSettings(kind=kind, samples=samples, noise=noise, seed=seed)
        _registered(explainer)
        #: The wrapped explainer.
        self.explainer = explainer

    kind = property(lambda self: self.settings.kind, doc="What the copies' attributions are reduced to.")
    samples = property(lambda self: self.settings.samples, doc="Noisy copies per input.")
    noise = property(lambda self: self.settings.noise, doc="The noise's standard deviation, a fraction of the range.")
    seed = property(lambda self: self.settings.seed, doc="The seed of the draws.")

    @property
    def method(self) -> str:
        """The wrapped method's registry name (also the explanations' ``method``)."""
        return self.explainer.method

    @property
    def reference_name(self) -> str:
        """The keyword the references go by (``references`` or ``baselines``)."""
        return self.explainer.reference_name

    @property
    def model(self) -> Any:
        """The explained Keras model."""
        return self.explainer.model

    @property
    def batch_size(self) -> Optional[int]:
        """The wrapped explainer's ``batch_size``: the most (copy, reference) pairs explained at once."""
        return self.explainer.batch_size

    @property
    def tracing_count(self) -> int:
        """How many times the wrapped explainer's compiled functions were traced."""
        return self.explainer.tracing_count

    def explain(self, inputs: Any, references: Any = UNSET, targets: Any = None, *, top_k: Optional[int] = None,
                baselines: Any = UNSET) -> Explanation:
        """Explains ``inputs`` through the noise tunnel (see :func:`noise_tunnel` for the arguments and result)."""
        return _smoothed(self.explainer, self.settings, inputs, references, baselines, targets, top_k)

    def __repr__(self) -> str:
        settings = ", ".join(f"{name}={value!r}" for name, value in self.settings.as_dict().items())
        return f"NoiseTunnel({type(self.explainer).__name__}, {settings})"


def smooth(explainer: Any, *, kind: str = defaults.SMOOTH_KIND, samples: int = defaults.SMOOTH_SAMPLES,
           noise: float = defaults.SMOOTH_NOISE, seed: int = defaults.SMOOTH_SEED) -> NoiseTunnel:
    """A noise tunnel over ``explainer``: an object whose ``explain`` smooths the explainer's attributions.

    Args:
        explainer: An explainer of a registered method (e.g. ``tf_ig2.IntegratedGradients(model)``).
        kind: ``"smoothgrad"`` (default :data:`tf_ig2.defaults.SMOOTH_KIND`), ``"smoothgrad_sq"`` or ``"vargrad"``.
        samples: Noisy copies per input (default :data:`tf_ig2.defaults.SMOOTH_SAMPLES`).
        noise: The noise's standard deviation as a fraction of each input's range (default
            :data:`tf_ig2.defaults.SMOOTH_NOISE`).
        seed: The seed of the draws (default :data:`tf_ig2.defaults.SMOOTH_SEED`).

    Returns:
        A :class:`NoiseTunnel` with the explainer's ``explain(inputs, references or baselines, targets=None, *,
        top_k=None)``.

    Raises:
        TypeError, ValueError: On a malformed setting (``"... Received: samples=0"``) or an explainer of no
            registered method.

    Example:
        >>> smoothed = tf_ig2.smooth(tf_ig2.IntegratedGradients(model, batch_size=256), samples=50, noise=0.15)
        >>> explanation = smoothed.explain(images, baselines=0.0)
    """
    return NoiseTunnel(explainer, kind=kind, samples=samples, noise=noise, seed=seed)
