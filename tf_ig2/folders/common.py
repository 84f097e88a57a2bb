"""What every part of :mod:`tf_ig2.folders` shares: names, errors, atomic JSON."""

from __future__ import annotations

import contextlib
import json
import logging
import os
from typing import Any, Dict, Optional, Union

PathLike = Union[str, "os.PathLike[str]"]

logger = logging.getLogger(__name__)

#: The lock file of a folder (removed when the run ends).
LOCK_NAME = ".tf_ig2.lock"
#: The manifest of the files tf_ig2 wrote in a folder.
MANIFEST_NAME = ".tf_ig2.files.json"
#: Prefixes of the temporary folders a run makes inside its destination (listed in its lock file).
STAGING_PREFIX = ".tf_ig2.staging-"
BACKUP_PREFIX = ".tf_ig2.previous-"
#: Where earlier results are kept when a failed publish could not put them all back (never removed).
RECOVERED_PREFIX = "tf_ig2-recovered-"
#: Entries of a folder that are tf_ig2's bookkeeping, not results.
BOOKKEEPING = (LOCK_NAME, MANIFEST_NAME)
#: Foreign files named in a message, at most.
MAX_NAMED = 3


class FolderInUseError(ValueError):
    """Another run holds the folder's lock; the message names it."""

    def __init__(self, message: str, holder: Optional[Dict[str, Any]] = None):
        super().__init__(message)
        self.holder = holder or {}


class ForeignFilesError(ValueError):
    """Files tf_ig2 did not write are where it would write its results."""


def fsync_directory(path: str) -> None:
    """Syncs a folder's entries to disk (where the platform allows), after a rename into it."""
    with contextlib.suppress(OSError, AttributeError):
        descriptor = os.open(path, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def write_json(path: str, value: Any, *, indent: Optional[int] = 2) -> None:
    """The one JSON writer: ``value`` as indented JSON under a temporary name, synced, renamed to ``path``.

    The file is either whole or absent, even when the process stops while writing.
    """
    temporary = path + ".tmp"
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(value, handle, indent=indent)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    fsync_directory(os.path.dirname(path) or ".")


