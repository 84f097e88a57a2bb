"""Only its own files removed: the manifest of the files tf_ig2 wrote in a folder."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from typing import Any, Dict, Iterable, List, Optional, Sequence

from tf_ig2.folders.common import MANIFEST_NAME, MAX_NAMED, PathLike, write_json


# -- the manifest ----------------------------------------------------------------------------------
def file_sha1(path: str) -> str:
    """The sha1 of a file's bytes, read 1 MB at a time."""
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def describe_file(path: str) -> Dict[str, Any]:
    """A manifest entry for the file at ``path``: its size, modification time and sha1."""
    status = os.stat(path)
    return {"size": status.st_size, "mtime_ns": status.st_mtime_ns, "sha1": file_sha1(path)}


def _inside(name: str) -> bool:
    """Whether a manifest's relative ``name`` stays inside its folder (no absolute path, no ``..``)."""
    normal = os.path.normpath(name)
    return bool(name) and not os.path.isabs(name) and normal != ".." and not normal.startswith(".." + os.sep)


class Manifest:
    """The files tf_ig2 wrote in a folder: relative path -> ``{size, mtime_ns, sha1}`` or ``{pending}``.

    A *pending* entry names a file being written: it is tf_ig2's whatever it holds (a run that
    stopped while writing it leaves it unfinished).

    Attributes:
        folder: The folder.
        entries: The entries, by path relative to the folder (``/``-separated).
        existed: Whether the manifest file existed when it was read.
    """

    def __init__(self, folder: str, entries: Dict[str, Dict[str, Any]], existed: bool):
        self.folder = folder
        self.entries = entries
        self.existed = existed

    @classmethod
    def load(cls, folder: PathLike) -> "Manifest":
        """The manifest of ``folder`` (empty when it has none or it is unreadable)."""
        folder = os.fspath(folder)
        path = os.path.join(folder, MANIFEST_NAME)
        entries: Dict[str, Dict[str, Any]] = {}
        existed = os.path.isfile(path)
        if existed:
            with contextlib.suppress(OSError, ValueError):
                with open(path, encoding="utf-8") as handle:
                    document = json.load(handle)
                if isinstance(document, dict) and isinstance(document.get("files"), dict):
                    # Only names inside the folder: a manifest never makes tf_ig2 touch a file elsewhere.
                    entries = {name: entry for name, entry in document["files"].items()
                               if isinstance(entry, dict) and isinstance(name, str) and _inside(name)}
        return cls(folder, entries, existed)

    def save(self) -> None:
        """Writes the manifest atomically."""
        write_json(os.path.join(self.folder, MANIFEST_NAME), {"format": 1, "files": self.entries},
                              indent=None)

    def _path(self, name: str) -> str:
        return os.path.join(self.folder, *name.split("/"))

    def owns(self, name: str) -> bool:
        """Whether ``name`` is a file tf_ig2 wrote here: listed and still matching its entry."""
        entry = self.entries.get(name)
        path = self._path(name)
        if entry is None or os.path.islink(path) or not os.path.isfile(path):
            return False
        if entry.get("pending"):
            return True
        status = os.stat(path)
        if status.st_size != entry.get("size"):
            return False
        return status.st_mtime_ns == entry.get("mtime_ns") or file_sha1(path) == entry.get("sha1")

    def foreign(self, names: Iterable[str]) -> List[str]:
        """Those of ``names`` present in the folder (files or folders) that tf_ig2 did not write."""
        return [name for name in names if os.path.lexists(self._path(name)) and not self.owns(name)]

    def mark_pending(self, names: Iterable[str]) -> None:
        """Lists ``names`` as being written (saved by the caller)."""
        for name in names:
            self.entries[name] = {"pending": True}

    def record(self, name: str, entry: Optional[Dict[str, Any]] = None) -> None:
        """Lists the file ``name`` as written, with ``entry`` or its current size, time and sha1."""
        self.entries[name] = entry if entry is not None else describe_file(self._path(name))

    def complete_pending(self, keep: Sequence[str] = ()) -> None:
        """Replaces pending entries of existing files by their size, time and sha1; drops the others.

        Args:
            keep: Files left pending (files tf_ig2 keeps rewriting, such as an index).
        """
        for name, entry in list(self.entries.items()):
            if entry.get("pending") and name not in keep:
                if os.path.isfile(self._path(name)) and not os.path.islink(self._path(name)):
                    self.record(name)
                else:
                    del self.entries[name]

    def remove(self, names: Optional[Iterable[str]] = None) -> List[str]:
        """Removes the listed files ``names`` (default: all) that still match; returns those removed.

        Every entry named is unlisted; a file that no longer matches its entry is left where it is.
        Folders left empty by a removal are removed too (never the folder itself).
        """
        removed = []
        for name in sorted(self.entries if names is None else names):
            if name not in self.entries:
                continue
            if self.owns(name):
                os.remove(self._path(name))
                removed.append(name)
                prune_empty_folders(self.folder, os.path.dirname(self._path(name)))
            del self.entries[name]
        return removed


def prune_empty_folders(top: str, folder: str) -> None:
    """Removes ``folder`` and its parents below ``top`` while they are empty."""
    top = os.path.abspath(top)
    folder = os.path.abspath(folder)
    while folder != top and folder.startswith(top + os.sep):
        try:
            os.rmdir(folder)
        except OSError:
            return
        folder = os.path.dirname(folder)


def foreign_message(folder: str, names: Sequence[str], what: str = "results") -> str:
    """The one-line refusal of files tf_ig2 did not write where it would write ``what``."""
    shown = ", ".join(repr(name) for name in sorted(names)[:MAX_NAMED])
    more = f" and {len(names) - MAX_NAMED} more" if len(names) > MAX_NAMED else ""
    return (f"Folder {folder!r} holds files tf_ig2 did not write where it would write its {what} ({shown}{more}); "
            "they are never written over: move them away or choose another folder.")


