"""Moving results from a staging folder into place, and the checks of a destination before a run."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from typing import Iterable, Iterator, List, Sequence

from tf_ig2.folders.common import (
    BACKUP_PREFIX,
    BOOKKEEPING,
    RECOVERED_PREFIX,
    STAGING_PREFIX,
    ForeignFilesError,
    PathLike,
)
from tf_ig2.folders.lock import held_lock, in_use_error, lock_holder
from tf_ig2.folders.manifest import Manifest, describe_file, foreign_message, prune_empty_folders

logger = logging.getLogger("tf_ig2.folders")


# -- publishing ------------------------------------------------------------------------------------
def _files_below(folder: str) -> List[str]:
    found = []
    for root, folders, names in os.walk(folder):
        folders.sort()
        for name in sorted(names):
            found.append(os.path.relpath(os.path.join(root, name), folder).replace(os.sep, "/"))
    return found


def _blocked_parents(destination: str, names: Iterable[str]) -> List[str]:
    """Parent paths of ``names`` that exist in ``destination`` as something other than a folder."""
    blocked = set()
    for name in names:
        parts = name.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            parent = "/".join(parts[:depth])
            path = os.path.join(destination, *parts[:depth])
            if os.path.lexists(path) and (os.path.islink(path) or not os.path.isdir(path)):
                blocked.add(parent)
    return sorted(blocked)


def publish(staging: str, destination: str, manifest: Manifest, *, keep_old: bool = False) -> List[str]:
    """Moves every file below ``staging`` to the same place below ``destination``; returns their paths.

    ``staging`` must be inside ``destination`` (so every move is a rename in one filesystem). The
    files tf_ig2 wrote there before (``manifest``) that this publication does not replace are
    removed unless ``keep_old``; every other entry of ``destination`` is left as it is. The
    previous files are moved aside first and removed only once every new file is in place and the
    manifest is saved; on any error the new files go back to ``staging`` and the previous ones
    back into place, leaving ``destination`` as it was.

    Raises:
        ForeignFilesError: If a file or folder tf_ig2 did not write is where a new file goes
            (nothing is moved then).
    """
    names = _files_below(staging)
    conflicts = manifest.foreign(names) + _blocked_parents(destination, names)
    if conflicts:
        raise ForeignFilesError(foreign_message(destination, conflicts))
    entries = {name: describe_file(os.path.join(staging, *name.split("/"))) for name in names}
    old = set() if keep_old else {name for name in manifest.entries if name not in entries}
    replaced = sorted(name for name in set(names) | old if manifest.owns(name))
    backup = tempfile.mkdtemp(prefix=BACKUP_PREFIX, dir=destination)
    lock = held_lock(destination)
    if lock is not None:
        lock.note_temporary(os.path.basename(backup))
    previous = dict(manifest.entries)
    moved: List[str] = []
    placed: List[str] = []
    try:
        for name in replaced:
            aside = os.path.join(backup, *name.split("/"))
            os.makedirs(os.path.dirname(aside), exist_ok=True)
            os.replace(os.path.join(destination, *name.split("/")), aside)
            moved.append(name)
        for name in names:
            target = os.path.join(destination, *name.split("/"))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.replace(os.path.join(staging, *name.split("/")), target)
            placed.append(name)
        kept = {key: value for key, value in previous.items() if key not in entries} if keep_old else {}
        manifest.entries = {**kept, **entries}
        manifest.save()
    except BaseException:
        manifest.entries = previous
        try:
            for name in reversed(placed):
                target = os.path.join(destination, *name.split("/"))
                os.replace(target, os.path.join(staging, *name.split("/")))
                prune_empty_folders(destination, os.path.dirname(target))
            for name in reversed(moved):
                target = os.path.join(destination, *name.split("/"))
                os.makedirs(os.path.dirname(target), exist_ok=True)
                os.replace(os.path.join(backup, *name.split("/")), target)
        except BaseException:
            # The earlier results could not all be put back: keep them, under a name no cleanup removes.
            kept = os.path.join(destination, RECOVERED_PREFIX + os.path.basename(backup)[len(BACKUP_PREFIX):])
            with contextlib.suppress(OSError):
                os.replace(backup, kept)
            logger.warning("Could not restore the earlier results of %s; they are kept in %s", destination, kept)
            raise
        raise
    finally:
        shutil.rmtree(backup, ignore_errors=True)  # gone already when it was kept
        if lock is not None:
            lock.note_temporary(os.path.basename(backup), done=True)
    for name in old:
        prune_empty_folders(destination, os.path.dirname(os.path.join(destination, *name.split("/"))))
    return names


@contextlib.contextmanager
def staging_folder(destination: str) -> Iterator[str]:
    """A temporary folder inside ``destination`` (listed in its lock file), removed at the end."""
    staging = tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=destination)
    lock = held_lock(destination)
    if lock is not None:
        lock.note_temporary(os.path.basename(staging))
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if lock is not None:
            lock.note_temporary(os.path.basename(staging), done=True)


# -- checks before a run -----------------------------------------------------------------------------
def visible_entries(folder: str) -> List[str]:
    """The entries of ``folder`` other than tf_ig2's bookkeeping (lock, manifest)."""
    return sorted(name for name in os.listdir(folder) if name not in BOOKKEEPING)


def check_destination(path: PathLike, *, overwrite: bool, names: Sequence[str] = (),
                      option: str = "--overwrite") -> str:
    """Checks, without writing anything, that results may go to the folder ``path``; returns it.

    Raises:
        ValueError: If ``path`` is a file or below one, a folder that cannot be written to, a
            non-empty folder without ``overwrite``, or one holding a file tf_ig2 did not write at
            one of ``names``.
        FolderInUseError: If another run holds its lock.
    """
    path = os.fspath(path)
    if os.path.lexists(path) and not os.path.isdir(path):
        raise ValueError(f"Output path {path!r} exists and is not a folder.")
    existing = os.path.abspath(path)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise ValueError(f"Output folder {path!r} cannot be created: {existing!r} is a file, not a folder.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"Output folder {path!r} cannot be written to: no write permission on {existing!r}.")
    if existing != os.path.abspath(path):
        return path
    holder = lock_holder(path)
    if holder is not None:
        raise in_use_error(path, holder)
    if visible_entries(path) and not overwrite:
        raise ValueError(f"Output folder {path!r} is not empty; pass {option} to replace the files tf_ig2 wrote "
                         "there (other files are left as they are).")
    conflicts = Manifest.load(path).foreign(names)
    if conflicts:
        raise ForeignFilesError(foreign_message(path, conflicts))
    return path

