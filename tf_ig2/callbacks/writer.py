"""The one summary writer of the callbacks: one run folder's events file, one compiled function per epoch.

Every summary of a logged epoch (images, scalars, texts) is written by one ``tf.function`` built per
set of tags, with TensorBoard's description of each tag (:func:`tf_ig2.callbacks.displays.describe`).
"""

from __future__ import annotations

import glob
import os
import uuid
import weakref
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np
import tensorflow as tf

from tf_ig2.callbacks.displays import describe
from tf_ig2.engine.compiled_model import compiled
from tf_ig2.visualize import encode_images

__all__ = ["EventsWriter"]


class EventsWriter:
    """One run folder's summary writer: one compiled function writes every summary of an epoch.

    Args:
        run_dir: The run folder (created by TensorFlow if needed).

    Raises:
        Exception: Whatever TensorFlow raises when the folder cannot be written.
    """

    def __init__(self, run_dir: str):
        suffix = f".{uuid.uuid4().hex[:12]}.v2"
        self.writer = tf.summary.create_file_writer(run_dir, filename_suffix=suffix)
        found = glob.glob(os.path.join(glob.escape(run_dir), f"*{suffix}"))
        self.events_file: Optional[str] = found[0] if found else None
        self._functions: Dict[Tuple[Tuple[str, ...], ...], Callable[..., Any]] = {}  # hold this writer
        # Closed at interpreter exit (or when dropped) should no one call close().
        self._finalizer = weakref.finalize(self, _close_quietly, self.writer)

    def _function(self, image_tags: Tuple[str, ...], scalar_tags: Tuple[str, ...],
                  text_tags: Tuple[str, ...]) -> Callable[..., Any]:
        key = (image_tags, scalar_tags, text_tags)
        if key not in self._functions:
            from tensorboard.plugins.image import metadata

            image_metadata = {tag: metadata.create_summary_metadata(display_name=None, description=describe(tag))
                              for tag in image_tags}
            signature = ([tf.TensorSpec([], tf.int64)] + [tf.TensorSpec([None], tf.string)] * len(image_tags)
                         + [tf.TensorSpec([len(scalar_tags)], tf.float32)]
                         + [tf.TensorSpec([], tf.string)] * len(text_tags))

            @compiled(signature)
            def write(step, *values):
                images, scalars, texts = values[:len(image_tags)], values[len(image_tags)], values[len(image_tags) + 1:]
                for tag, encoded in zip(image_tags, images):
                    tf.summary.write(tag, encoded, step=step, metadata=image_metadata[tag])
                for index, tag in enumerate(scalar_tags):
                    tf.summary.scalar(tag, scalars[index], step=step, description=describe(tag))
                for tag, text in zip(text_tags, texts):
                    tf.summary.text(tag, text, step=step, description=describe(tag))

            self._functions[key] = write
        return self._functions[key]

    def write(self, step: int, images: Dict[str, np.ndarray], scalars: Dict[str, float], texts: Dict[str, str]) -> None:
        """Writes ``{tag: (k, H, W, 3) uint8}`` images, scalars and texts at ``step`` and flushes.

        Raises:
            OSError: If the events file disappeared (the folder was removed or replaced); the
                writer is closed then, and a new one must be opened.
        """
        write = self._function(tuple(images), tuple(scalars), tuple(texts))
        with self.writer.as_default():
            write(tf.constant(step, tf.int64), *[tf.constant(encode_images(value)) for value in images.values()],
                  tf.constant(list(scalars.values()), tf.float32), *[tf.constant(text) for text in texts.values()])
        self.writer.flush()
        if self.events_file is not None and not os.path.isfile(self.events_file):
            # The folder was removed or replaced: the open file handle writes nowhere visible.
            try:
                self.close()
            except Exception:  # noqa: BLE001 - the file is gone; a new writer opens next time
                pass
            raise OSError(f"the events file {self.events_file!r} has disappeared; a new one is opened at the "
                          "next logged epoch")

    def close(self) -> None:
        """Flushes and closes the file."""
        self._functions = {}
        self._finalizer.detach()
        self.writer.flush()
        self.writer.close()


def _close_quietly(writer: Any) -> None:
    try:
        writer.flush()
        writer.close()
    except Exception:  # noqa: BLE001 - at exit, with TensorFlow possibly half torn down
        pass
