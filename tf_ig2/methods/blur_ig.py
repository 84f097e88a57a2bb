"""Blur IG (Xu, Venugopalan, Sundararajan, Taly and Wu, "Attribution in Scale and Space", CVPR 2020).

The path runs along the blur scale, from the input blurred with a Gaussian of standard deviation
``σ_K`` (the counterfactual) to the input itself (``σ = 0``): ``γ(σ) = G_σ * x``, a Gaussian blur
of every channel over the two spatial axes of an ``(N, H, W, C)`` image. Integrating the gradient
along it, as PAIR saliency's ``BlurIG`` does (``saliency/core/blur_ig.py``)::

    σ_k = k σ_max / K  (or sqrt(k σ_max / K) with sqrt=True),   k = 0..K
    A(x) = − Σ_{k<K} (σ_{k+1} − σ_k) · (G_{σ_k + h} * x − G_{σ_k} * x) / h ⊙ ∇f_c(G_{σ_k} * x)

with K = ``steps``, h = ``grad_step`` (a forward difference for ``∂γ/∂σ``) and the gradient taken at
the left end of every interval. Completeness: ``Σ A ≈ f_c(x) − f_c(G_{σ_K} * x)`` up to the
discretisation (more steps, a smaller ``grad_step``), so ``counterfactuals`` hold the most blurred
image ``(N, 1, H, W, C)`` and ``counterfactual_scores`` its score. With ``sqrt=True`` the last level
is ``σ_K = sqrt(σ_max)``, as in the reference.

The blur is ``scipy.ndimage.gaussian_filter(image, [σ, σ, 0], mode="constant")``, the one the
reference calls: a kernel ``exp(−d² / 2σ²)`` over ``|d| ≤ int(4σ + 0.5)`` normalised to sum to 1, zeros
outside the image, no blur for ``σ ≤ 1e-15``. Here it is two matrix products per image,
``B_H(σ) · x · B_W(σ)ᵀ`` with ``B(σ)[i, j]`` the kernel's weight at ``d = j − i``, built inside the
compiled graph for each σ of the path (an ``H × H`` and a ``W × W`` matrix, whatever σ). The path
and the sums are float64 (the model sees float32): the forward difference divides by ``h = 0.01``.

Inputs must be images: float ``(N, H, W, C)``. With several model inputs, every ``(N, H, W, C)``
float input is blurred and the other float inputs are held fixed (their attributions are zero);
token ids are refused (Blur IG takes no ``input_layer``: text has no spatial scale to blur).
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np
import tensorflow as tf

from tf_ig2 import defaults, validation
from tf_ig2.engine.compiled_model import as_list
from tf_ig2.engine.model_view import ModelView
from tf_ig2.methods import registry
from tf_ig2.methods.gradient import ReferenceFreeExplainer
from tf_ig2.methods.integrated_gradients import endpoint_scores, score_gradient

#: Below this σ scipy's ``gaussian_filter`` leaves an axis as it is.
_NO_BLUR = 1e-15


def blur_sigmas(max_sigma: float, steps: int, grad_step: float, sqrt: bool = False
                ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The blur levels of the path, computed in float64 as PAIR saliency's ``BlurIG`` computes them.

    Returns:
        ``(sigmas (steps + 1,), shifted (steps,), widths (steps,))``: ``σ_k``, ``σ_k + grad_step``
        (for the forward difference) and ``σ_{k+1} − σ_k``.
    """
    if sqrt:
        sigmas = [math.sqrt(float(k) * max_sigma / float(steps)) for k in range(steps + 1)]
    else:
        sigmas = [float(k) * max_sigma / float(steps) for k in range(steps + 1)]
    shifted = [sigmas[k] + grad_step for k in range(steps)]
    widths = [sigmas[k + 1] - sigmas[k] for k in range(steps)]
    return np.array(sigmas, np.float64), np.array(shifted, np.float64), np.array(widths, np.float64)


def gaussian_matrix(size: int, sigma: Any, truncate: float = defaults.BLUR_IG_TRUNCATE) -> tf.Tensor:
    """``(size, size)`` float64 ``B`` with ``B @ v`` the 1-D Gaussian blur of ``v`` with zeros outside.

    Equal to ``scipy.ndimage.gaussian_filter1d(v, sigma, mode="constant", truncate=truncate)``:
    weights ``exp(−d² / 2σ²)`` for ``|d| ≤ int(truncate σ + 0.5)``, normalised over that whole window
    (the part outside the signal multiplies zeros); the identity for ``σ ≤ 1e-15``.

    Args:
        size: The length of the blurred axis.
        sigma: The standard deviation, a scalar (a float64 tensor inside a graph).
        truncate: How many standard deviations the kernel reaches.
    """
    sigma = tf.cast(sigma, tf.float64)
    blurred = sigma > _NO_BLUR
    radius = tf.where(blurred, tf.floor(truncate * sigma + 0.5), tf.constant(0.0, tf.float64))
    safe = tf.where(blurred, sigma, tf.constant(1.0, tf.float64))
    scale = -0.5 / (safe * safe)
    window = tf.range(-radius, radius + 1.0)
    total = tf.reduce_sum(tf.exp(scale * window ** 2))
    positions = tf.range(size, dtype=tf.float64)
    offsets = positions[None, :] - positions[:, None]  # d = j - i
    weights = tf.where(tf.abs(offsets) <= radius, tf.exp(scale * offsets ** 2), tf.constant(0.0, tf.float64))
    return weights / total


def gaussian_blur(images: tf.Tensor, sigma: Any, truncate: float = defaults.BLUR_IG_TRUNCATE) -> tf.Tensor:
    """``(P, H, W, C)`` float64 images blurred over H and W with standard deviation ``sigma``, per channel.

    Equal to ``scipy.ndimage.gaussian_filter(image, [sigma, sigma, 0], mode="constant")`` for each
    image (PAIR saliency's ``gaussian_blur``), up to float64 round-off.
    """
    images = tf.cast(images, tf.float64)
    rows = gaussian_matrix(int(images.shape[1]), sigma, truncate)
    columns = gaussian_matrix(int(images.shape[2]), sigma, truncate)
    return tf.einsum("pikc,lk->pilc", tf.einsum("ij,pjkc->pikc", rows, images), columns)


def integrate_blur(view: ModelView, inputs: Any, targets: Any, *, max_sigma: float, steps: int,
                   grad_step: float, sqrt: bool = False) -> Dict[str, Any]:
    """Blur IG of each input; a pure tensor function.

    Args:
        view: The model's score (:class:`~tf_ig2.engine.model_view.ModelView`).
        inputs: ``(P, H, W, C)`` float32 images, or a list with one ``(P, *S_i)`` tensor per model
            input: the rank-4 ones are blurred, the others held fixed.
        targets: ``(P,)`` int32 class indices or a callable; for T targets per input, ``(P, T)``
            class indices or a callable returning ``(P, T)`` scores (one path, T gradients at each
            of its points).
        max_sigma, steps, grad_step, sqrt: As for :class:`BlurIG`.

    Returns:
        ``attributions`` (like ``inputs``; ``(P, T, *S)`` per input for T targets; zero for inputs
        held fixed), ``counterfactuals`` (the most blurred images; the fixed inputs themselves),
        ``target_scores`` ``f_c(x)`` and ``counterfactual_scores`` ``f_c(G_{σ_K} * x)``, ``(P,)``
        (or ``(P, T)``).
    """
    single = not isinstance(inputs, (list, tuple))
    inputs = as_list(inputs)
    blurred = [len(x.shape) == 4 for x in inputs]
    sigmas, shifted, widths = (tf.constant(values) for values in blur_sigmas(max_sigma, steps, grad_step, sqrt))
    images = [tf.cast(x, tf.float64) for x in inputs]

    def points_at(sigma: tf.Tensor) -> Tuple[List[tf.Tensor], List[Optional[tf.Tensor]]]:
        """The path's float32 points at ``sigma`` and their float64 images (``None`` where fixed)."""
        exact = [gaussian_blur(image, sigma) if flag else None for image, flag in zip(images, blurred)]
        return [tf.cast(value, tf.float32) if value is not None else x for value, x in zip(exact, inputs)], exact

    ends, _ = points_at(sigmas[steps])
    input_scores, end_scores = endpoint_scores(view, inputs, ends, targets)
    several = len(input_scores.shape) == 2

    def widened(value: tf.Tensor) -> tf.Tensor:  # (P, 1, *S) for T targets
        return tf.expand_dims(value, 1) if several else value

    def step(k, totals):
        points, low = points_at(sigmas[k])
        _, gradients = score_gradient(view, points, targets)
        updated = []
        for index, total in enumerate(totals):
            if not blurred[index]:
                updated.append(total)
                continue
            direction = (gaussian_blur(images[index], shifted[k]) - low[index]) / grad_step
            updated.append(total + widths[k] * (widened(direction) * tf.cast(gradients[index], tf.float64)))
        return k + 1, updated

    zeros = [tf.zeros_like(tf.repeat(widened(image), int(input_scores.shape[1]), axis=1) if several else image)
             for image in images]
    _, totals = tf.while_loop(lambda k, _: k < steps, step, (tf.constant(0), zeros), parallel_iterations=1)
    attributions = [tf.cast(-total, tf.float32) for total in totals]
    return {"attributions": attributions[0] if single else attributions,
            "counterfactuals": ends[0] if single else ends,
            "target_scores": input_scores, "counterfactual_scores": end_scores}


class BlurIG(ReferenceFreeExplainer):
    """Blur IG: Integrated Gradients along the blur scale, from a blurred copy to the image.

    Args:
        model: A Keras model taking images ``(N, H, W, C)`` (or several inputs, some of them images).
        max_sigma: σ of the most blurred image, in pixels (default
            :data:`tf_ig2.defaults.BLUR_IG_MAX_SIGMA`).
        steps: Blur levels K, one gradient each (default :data:`tf_ig2.defaults.BLUR_IG_STEPS`).
        grad_step: The σ step h of the forward difference giving ``∂γ/∂σ`` (default
            :data:`tf_ig2.defaults.BLUR_IG_GRAD_STEP`).
        sqrt: Space the levels as ``sqrt(k max_sigma / K)`` (the last one is then ``sqrt(max_sigma)``)
            instead of ``k max_sigma / K`` (default :data:`tf_ig2.defaults.BLUR_IG_SQRT`).
        batch_size: The most inputs processed at once; ``None`` for all.
        output: For a model with several outputs, the one to explain (a name or an index).

    The defaults are PAIR saliency's (``BlurIG.GetMask``), and the results equal it to float32
    round-off. ``explain(inputs, baselines=None, targets=None, *, top_k=None)``: see
    :meth:`~tf_ig2.methods.gradient.ReferenceFreeExplainer.explain`; the path starts from the blurred
    input, so ``baselines`` are checked and not used. ``counterfactuals`` are the blurred inputs
    ``(N, 1, H, W, C)``.

    Raises:
        ValueError: In ``explain``, for inputs that are not float images ``(N, H, W, C)`` (token ids
            included: Blur IG takes no ``input_layer``).

    Example:
        >>> explanation = tf_ig2.BlurIG(model).explain(images)
        >>> explanation.attributions.shape == images.shape
    """

    method = "blur_ig"

    def __init__(self, model: Any, max_sigma: float = defaults.BLUR_IG_MAX_SIGMA,
                 steps: int = defaults.BLUR_IG_STEPS, grad_step: float = defaults.BLUR_IG_GRAD_STEP,
                 sqrt: bool = defaults.BLUR_IG_SQRT, *, batch_size: Optional[int] = None,
                 output: Union[None, str, int] = None):
        self.settings = registry.BlurIGSettings(max_sigma=max_sigma, steps=steps, grad_step=grad_step, sqrt=sqrt,
                                                batch_size=batch_size, output=output)
        self.max_sigma, self.steps = self.settings.max_sigma, self.settings.steps
        self.grad_step, self.sqrt = self.settings.grad_step, self.settings.sqrt
        super().__init__(model, batch_size=self.settings.batch_size, output=output)

    def _check_method_inputs(self, inputs: Any) -> None:
        """Refuses inputs that are not float images ``(N, H, W, C)``, before any other check.

        Raises:
            ValueError: For integer inputs (token ids, uint8 images), or when no input is a rank-4
                float array.
        """
        names = self.view.inputs.names
        flat = self.view.inputs.flatten("inputs", inputs)
        shapes = []
        for index, value in enumerate(flat):
            name = f"inputs[{names[index]!r}]" if len(flat) > 1 else "inputs"
            array = validation.as_numpy(name, value)
            if not np.issubdtype(array.dtype, np.floating):
                raise ValueError(
                    f"Blur IG blurs float images (N, H, W, C) over their two spatial axes; `{name}` holds "
                    f"{validation.describe(array)}. Token ids have no spatial scale to blur, and Blur IG takes no "
                    f"`input_layer`: explain them with method 'ig', 'gradient' or 'gradient_input' and "
                    f"input_layer=<the Embedding layer>. Cast integer images (e.g. uint8) with .astype('float32').")
            shapes.append(array.shape)
        if not any(len(shape) == 4 for shape in shapes):
            shown = ", ".join(str(tuple(shape)) for shape in shapes)
            raise ValueError(
                f"Blur IG blurs images: it needs float inputs of shape (N, H, W, C), blurred over H and W for "
                f"each channel C (a grayscale (N, H, W) batch needs a channel axis: images[..., None]); with "
                f"several model inputs, at least one of them. Received: inputs of shape {shown}")

    def _completeness_advice(self) -> str:
        return (f"Blur IG's sum approaches f(x) - f(blurred x) as the blur levels get finer: try more steps (the "
                f"first level's interval, sigma in [0, {self.max_sigma:g}/{self.steps}], adds nothing while "
                f"grad_step < 0.125, where the kernel is one pixel wide), a smaller grad_step, or a smaller max_sigma.")

    def _integrate(self, inputs, baselines, targets, model_inputs):
        del baselines, model_inputs  # the path starts from the blurred input; no input_layer
        return integrate_blur(self.view, inputs, targets, max_sigma=self.max_sigma, steps=self.steps,
                              grad_step=self.grad_step, sqrt=self.sqrt)
