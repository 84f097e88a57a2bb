"""Token pictures: heat strips (images), HTML spans (notebooks) and Markdown tables (TensorBoard's text tab).

Colours: red for positive, blue for negative, white for zero, on one symmetric scale per sentence
(the largest magnitude is full colour).
"""

from __future__ import annotations

import numbers
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import tensorflow as tf

from tf_ig2 import defaults, validation
from tf_ig2.visualize import maps
from tf_ig2.visualize.markup import html_text, markdown_text


def _signed_colours(values: np.ndarray) -> np.ndarray:
    """``(K, 3)`` float colours in [0, 1]: red for positive, blue for negative, white for zero."""
    values = np.asarray(values, np.float64)
    scale = np.abs(values).max() if values.size else 0.0
    signed = values / scale if scale > 0 else np.zeros_like(values)
    return maps._diverging(signed).clip(0, 1)


def token_strip(tokens: Sequence[str], attributions: Any, *, height: int = 28,
                font_scale: float = 0.5) -> tf.Tensor:
    """A heat strip of tokens: each token on a box coloured by its attribution.

    Args:
        tokens: T token strings (padding tokens may be left out by passing fewer tokens).
        attributions: ``(T,)`` per-token attributions (e.g. an IG² explanation through an
            embedding); red is positive, blue negative, white zero, on one symmetric scale.
        height: Pixel height of the strip.
        font_scale: OpenCV font scale of the token text.

    Returns:
        ``(height, W, 3)`` float32 image in [0, 1], W growing with the tokens' lengths.
    """
    import cv2  # a dependency of tf-explain; imported lazily

    values = np.asarray(attributions, np.float64).reshape(-1)
    if len(tokens) != len(values):
        raise ValueError(f"`tokens` and `attributions` must have the same length. Received: "
                         f"{len(tokens)} tokens and {len(values)} attributions")
    colours = _signed_colours(values)
    font, thickness, pad = cv2.FONT_HERSHEY_SIMPLEX, 1, 6
    widths = [cv2.getTextSize(str(token), font, font_scale, thickness)[0][0] + 2 * pad for token in tokens]
    strip = np.full((height, max(sum(widths), 1), 3), 255, np.uint8)  # OpenCV draws text on uint8
    left = 0
    for token, width, colour in zip(tokens, widths, colours):
        strip[:, left:left + width] = np.round(colour * 255)
        strip[:, left + width - 1:left + width] = 217
        baseline = height // 2 + int(cv2.getTextSize(str(token), font, font_scale, thickness)[0][1] / 2)
        cv2.putText(strip, str(token), (left + pad, baseline), font, font_scale, (0, 0, 0), thickness, cv2.LINE_AA)
        left += width
    return tf.constant(strip.astype(np.float32) / 255.0)


def token_html(tokens: Sequence[str], attributions: Any) -> str:
    """An HTML snippet of the tokens on backgrounds coloured by their attributions.

    Args:
        tokens: T token strings.
        attributions: ``(T,)`` per-token attributions.

    Returns:
        A ``<span>`` sequence, each with its attribution in the ``title`` (shown on hover).
    """
    values = np.asarray(attributions, np.float64).reshape(-1)
    if len(tokens) != len(values):
        raise ValueError(f"`tokens` and `attributions` must have the same length. Received: "
                         f"{len(tokens)} tokens and {len(values)} attributions")
    spans = []
    for token, value, colour in zip(tokens, values, _signed_colours(values)):
        red, green, blue = (int(round(255 * c)) for c in colour)
        spans.append(f'<span style="background-color: rgb({red}, {green}, {blue}); padding: 0 2px" '
                     f'title="{value:+.4g}">{html_text(token)}</span>')
    return '<p style="font-family: monospace; line-height: 1.8">' + " ".join(spans) + "</p>"


def token_markdown(tokens: Sequence[str], attributions: Any, *,
                   emphasis: float = defaults.CALLBACK_TEXT_EMPHASIS) -> str:
    """A two-row Markdown table of tokens and their attributions, as TensorBoard's text tab shows it.

    TensorBoard renders text summaries as Markdown (tables included) and strips raw HTML styling,
    so the colours of :func:`token_html` cannot be used there; instead each attribution is written
    out (signed, 3 significant digits) and those whose magnitude is at least ``emphasis`` times the
    largest in the sentence are bold.

    Args:
        tokens: T token strings.
        attributions: ``(T,)`` per-token attributions.
        emphasis: In [0, 1]; the fraction of the largest magnitude from which values are bold.

    Returns:
        Markdown text: a header row ``| token | t_1 | ... |`` and a row ``| attribution | a_1 | ... |``;
        ``*(no tokens)*`` for an empty sentence.
    """
    values = np.asarray(attributions, np.float64).reshape(-1)
    if len(tokens) != len(values):
        raise ValueError(f"`tokens` and `attributions` must have the same length. Received: "
                         f"{len(tokens)} tokens and {len(values)} attributions")
    if not len(values):
        return "*(no tokens)*"
    largest = float(np.max(np.abs(values)))
    cells = []
    for value in values:
        cell = f"{value:+.3g}"
        cells.append(f"**{cell}**" if largest > 0 and abs(value) >= emphasis * largest else cell)
    header = "| token | " + " | ".join(markdown_text(token) for token in tokens) + " |"
    rule = "| --- | " + " | ".join("---:" for _ in tokens) + " |"
    row = "| attribution | " + " | ".join(cells) + " |"
    return "\n".join([header, rule, row])


def check_vocabulary(vocabulary: Any) -> Union[None, List[str], Dict[int, str]]:
    """``vocabulary`` as a list of tokens (indexed by id) or a ``{id: token}`` dict; ``None`` stays ``None``.

    Raises:
        TypeError: If it is neither a sequence of tokens nor a mapping of int ids to tokens.
    """
    if vocabulary is None:
        return None
    if isinstance(vocabulary, Mapping):
        keys = list(vocabulary)
        if not all(isinstance(key, (numbers.Integral, np.integer)) and not isinstance(key, bool) for key in keys):
            hint = (" (it maps tokens to ids; pass {index: token for token, index in vocabulary.items()})"
                    if all(isinstance(key, str) for key in keys) else "")
            raise TypeError(f"`vocabulary` as a mapping must map int token ids to tokens{hint}. "
                            f"Received: keys such as {keys[:3]!r}")
        return {int(key): str(value) for key, value in vocabulary.items()}
    if isinstance(vocabulary, (str, bytes)) or not isinstance(vocabulary, (Sequence, np.ndarray)):
        raise TypeError("`vocabulary` must be None, a sequence of tokens (indexed by id) or a mapping "
                        f"{{id: token}}. Received: {validation.describe(vocabulary)}")
    return [item.decode("utf-8", "replace") if isinstance(item, bytes) else str(item) for item in vocabulary]


def token_texts(ids: Any, vocabulary: Union[None, List[str], Dict[int, str]], padding_id: Optional[int],
                index: int = 0) -> Tuple[List[str], np.ndarray]:
    """The shown tokens of one sentence of ids and their positions (padding left out).

    Args:
        ids: ``(T,)`` token ids.
        vocabulary: From :func:`check_vocabulary`; ``None`` shows the ids.
        padding_id: The id left out; ``None`` keeps every position.
        index: The sentence's index, for the error message.

    Returns:
        ``(tokens, positions)``: the token strings and the ``(T',)`` int positions they come from.

    Raises:
        ValueError: If the vocabulary has no token for one of the ids.
    """
    ids = np.asarray(ids)
    keep = np.ones(ids.shape, bool) if padding_id is None else ids != padding_id
    positions = np.flatnonzero(keep)
    words = []
    for token_id in (int(value) for value in ids[positions]):
        if vocabulary is None:
            words.append(str(token_id))
        elif isinstance(vocabulary, dict):
            if token_id not in vocabulary:
                raise ValueError(f"`vocabulary` has no token for id {token_id} (in sentence {index} of "
                                 f"`validation_data`). Received: a mapping of {len(vocabulary)} ids")
            words.append(vocabulary[token_id])
        else:
            if not 0 <= token_id < len(vocabulary):
                raise ValueError(f"`vocabulary` has no token for id {token_id} (in sentence {index} of "
                                 f"`validation_data`). Received: {len(vocabulary)} tokens")
            words.append(vocabulary[token_id])
    return words, positions
