"""Gaussian blur of image batches: the RISE blur fill of the curves, and blurred references.

A separable, edge-normalised Gaussian (a constant image stays constant), run in TensorFlow.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
import tensorflow as tf

from tf_ig2 import defaults

# -- Gaussian blur -------------------------------------------------------------------------------

def checked_sigma(sigma: Any) -> float:
    """``sigma`` as a float; a ``TypeError`` or ``ValueError`` naming it unless it is a finite number > 0."""
    if isinstance(sigma, bool) or not isinstance(sigma, numbers.Real):
        raise TypeError(f"`sigma` must be a positive number. Received: sigma={sigma!r}")
    if not math.isfinite(sigma) or sigma <= 0:
        raise ValueError(f"`sigma` must be a positive number. Received: sigma={sigma!r}")
    return float(sigma)


def _gaussian_kernel(sigma: float) -> np.ndarray:
    radius = max(1, int(math.ceil(defaults.METRIC_BLUR_TRUNCATE * sigma)))
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    return (kernel / kernel.sum()).astype(np.float32)


def _blur(images: tf.Tensor, sigma: float) -> tf.Tensor:
    """Separable, edge-normalised Gaussian blur of ``(P, H, W, C)`` float32 images."""
    kernel = tf.constant(_gaussian_kernel(sigma))
    channels = images.shape[-1]
    vertical = tf.tile(tf.reshape(kernel, [-1, 1, 1, 1]), [1, 1, channels, 1])
    horizontal = tf.tile(tf.reshape(kernel, [1, -1, 1, 1]), [1, 1, channels, 1])

    def smooth(values: tf.Tensor) -> tf.Tensor:
        values = tf.nn.depthwise_conv2d(values, vertical, [1, 1, 1, 1], "SAME")
        return tf.nn.depthwise_conv2d(values, horizontal, [1, 1, 1, 1], "SAME")

    # Zero padding, then division by the blurred all-ones image: near the border the kernel is
    # renormalised over the pixels inside the image, so a constant image stays constant.
    weights = smooth(tf.ones_like(images[:1]))
    return smooth(images) / weights


def gaussian_blur(images: Any, sigma: float = defaults.METRIC_BLUR_SIGMA) -> tf.Tensor:
    """Blurs a batch of images with a Gaussian kernel (TensorFlow ops; usable in ``tf.function``).

    The kernel reaches ``ceil(METRIC_BLUR_TRUNCATE * sigma)`` pixels either side and is
    renormalised at the borders over the pixels inside the image.

    Args:
        images: ``(N, H, W)`` or ``(N, H, W, C)`` float tensor or array.
        sigma: Standard deviation of the kernel in pixels, > 0.

    Returns:
        ``images``' shape, float32.

    Raises:
        TypeError, ValueError: On a non-positive ``sigma`` or images of another rank.
    """
    sigma = checked_sigma(sigma)
    images = tf.cast(tf.convert_to_tensor(images), tf.float32)
    if len(images.shape) not in (3, 4):
        raise ValueError(
            f"`images` must have shape (N, H, W) or (N, H, W, C). Received: shape {tuple(images.shape)}"
        )
    if len(images.shape) == 3:
        return _blur(images[..., None], sigma)[..., 0]
    return _blur(images, sigma)
