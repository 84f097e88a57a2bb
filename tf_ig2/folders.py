"""Folders tf_ig2 writes results to: one run at a time, and only their own files removed.

Every folder tf_ig2 writes results into (a results folder of :func:`tf_ig2.dataset.explain_dataset`,
the output folder of ``tf-ig2 explain`` and ``tf-ig2 demo``, a callback's TensorBoard run folder)
follows two rules:

- **One run at a time.** A run takes the folder's lock (:class:`FolderLock`, the file
  :data:`LOCK_NAME` locked with ``fcntl.flock``) before it reads or writes anything and releases
  it when it ends; another run on the same folder is refused with :class:`FolderInUseError`,
  whose one line names the running one (PID, host, start time, command). A lock file left by a
  process that died is taken over: the kernel drops a dead process's ``flock``; where a
  filesystem has no ``flock``, the process named in the file is looked up by PID on this host.
- **Only its own files removed.** The folder's manifest (:data:`MANIFEST_NAME`,
  :class:`Manifest`) lists the files tf_ig2 wrote there, with their sizes and sha1. Starting
  over, resuming or replacing results removes only listed files that still match their entry;
  any other file or folder, of any name, is left alone, and one found exactly where results
  would go is refused (:class:`ForeignFilesError`), never written over.

:func:`publish` moves files written in a staging folder inside the destination into place,
atomically per file and reversibly as a whole. Standard library only: no TensorFlow, no numpy.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import hashlib
import json
import os
import shutil
import socket
import sys
import tempfile
import weakref
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Union

PathLike = Union[str, "os.PathLike[str]"]

#: The lock file of a folder (removed when the run ends).
LOCK_NAME = ".tf_ig2.lock"
#: The manifest of the files tf_ig2 wrote in a folder.
MANIFEST_NAME = ".tf_ig2.files.json"
#: Prefixes of the temporary folders a run makes inside its destination (listed in its lock file).
STAGING_PREFIX = ".tf_ig2.staging-"
BACKUP_PREFIX = ".tf_ig2.previous-"
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


# -- the lock --------------------------------------------------------------------------------------
def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def describe_holder(holder: Dict[str, Any]) -> str:
    """``PID 123 on host h, started 2025-01-01T10:00:00, command: tf-ig2 explain ...``."""
    return (f"PID {holder.get('pid', '?')} on host {holder.get('host', '?')}, started {holder.get('started', '?')}, "
            f"command: {holder.get('command', '?')}")


def _in_use(folder: str, holder: Dict[str, Any]) -> FolderInUseError:
    return FolderInUseError(f"Folder {folder!r} is in use by another run ({describe_holder(holder)}); wait for it "
                            "to finish or choose another folder.", holder)


def _read_record(descriptor: int) -> Dict[str, Any]:
    try:
        os.lseek(descriptor, 0, os.SEEK_SET)
        text = os.read(descriptor, 1 << 16).decode("utf-8", "replace")
        record = json.loads(text) if text.strip() else {}
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _flock(descriptor: int) -> Optional[bool]:
    """True: locked; False: another process holds it; None: the filesystem has no flock."""
    import fcntl

    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as error:
        if error.errno in (errno.EAGAIN, errno.EACCES):
            return False
        return None
    return True


def _stale(record: Dict[str, Any]) -> bool:
    """Whether a lock record names no running process (on this host, by PID); other hosts' are live."""
    if not record or "pid" not in record:
        return True
    if record.get("host") != socket.gethostname():
        return False
    return int(record["pid"]) != os.getpid() and not _process_alive(int(record["pid"]))


def _command_line() -> str:
    """This process's command, e.g. ``tf-ig2 explain ...`` or ``python -m tf_ig2 explain ...``."""
    program = sys.argv[0] if sys.argv and sys.argv[0] else "python"
    name = os.path.basename(program)
    if name == "__main__.py":
        name = f"python -m {os.path.basename(os.path.dirname(program))}"
    return " ".join([name, *sys.argv[1:]])


#: Locks this process holds: real path of the folder -> lock.
_HELD: "weakref.WeakValueDictionary[str, FolderLock]" = weakref.WeakValueDictionary()


def _release(descriptor: int, path: str, identity: tuple) -> None:
    """Removes the lock file if it is still this lock's, then closes it (releasing the flock)."""
    with contextlib.suppress(OSError):
        found = os.stat(path)
        if (found.st_dev, found.st_ino) == identity:
            os.unlink(path)
    with contextlib.suppress(OSError):
        os.close(descriptor)


class FolderLock:
    """The lock of one folder, held by one run of one process.

    Args:
        folder: The folder (must exist when :meth:`acquire` is called).
        owner: Any object this lock is held for, told apart in :func:`held_lock`.
    """

    def __init__(self, folder: PathLike, owner: Any = None):
        self.folder = os.fspath(folder)
        self.path = os.path.join(self.folder, LOCK_NAME)
        self.owner = weakref.ref(owner) if owner is not None else None
        self.record: Dict[str, Any] = {}
        self._finalizer: Optional[weakref.finalize] = None

    @property
    def held(self) -> bool:
        """Whether this lock is held."""
        return self._finalizer is not None and self._finalizer.alive

    def acquire(self) -> "FolderLock":
        """Takes the lock; a lock file of a dead process is taken over (its temporaries removed).

        Raises:
            FolderInUseError: If another run holds it (in this process too).
        """
        key = os.path.realpath(self.folder)
        other = _HELD.get(key)
        if other is not None and other.held:
            raise _in_use(self.folder, other.record)
        while True:
            descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            locked = _flock(descriptor)
            previous = _read_record(descriptor)
            if locked is False or (locked is None and not _stale(previous)):
                os.close(descriptor)
                raise _in_use(self.folder, previous)
            found, opened = None, os.fstat(descriptor)
            with contextlib.suppress(OSError):
                found = os.stat(self.path)
            if found is not None and (found.st_dev, found.st_ino) == (opened.st_dev, opened.st_ino):
                break
            os.close(descriptor)  # the file was removed by its holder meanwhile: lock the new one
        self._remove_temporaries(previous)
        self.record = {"pid": os.getpid(), "host": socket.gethostname(),
                       "started": datetime.datetime.now().isoformat(timespec="seconds"),
                       "command": _command_line(),
                       "temporaries": []}
        self._descriptor = descriptor
        self._write_record()
        self._finalizer = weakref.finalize(self, _release, descriptor, self.path, (opened.st_dev, opened.st_ino))
        _HELD[key] = self
        return self

    def _write_record(self) -> None:
        payload = json.dumps(self.record).encode("utf-8")
        os.ftruncate(self._descriptor, 0)
        os.pwrite(self._descriptor, payload, 0)
        os.fsync(self._descriptor)

    def _remove_temporaries(self, previous: Dict[str, Any]) -> None:
        """Removes the staging folders a dead run listed in its lock file (only names of ours)."""
        for name in previous.get("temporaries", []) if isinstance(previous.get("temporaries"), list) else []:
            if isinstance(name, str) and os.sep not in name and name.startswith((STAGING_PREFIX, BACKUP_PREFIX)):
                shutil.rmtree(os.path.join(self.folder, name), ignore_errors=True)

    def note_temporary(self, name: str, *, done: bool = False) -> None:
        """Lists (or, when ``done``, unlists) a temporary folder of this run in the lock file."""
        if not self.held:
            return
        if done:
            self.record["temporaries"] = [item for item in self.record["temporaries"] if item != name]
        else:
            self.record["temporaries"].append(name)
        with contextlib.suppress(OSError):
            self._write_record()

    def release(self) -> None:
        """Releases the lock and removes the lock file (nothing happens if it is not held)."""
        if self._finalizer is not None:
            self._finalizer()
            self._finalizer = None

    def __enter__(self) -> "FolderLock":
        return self.acquire()

    def __exit__(self, *exc_info: Any) -> None:
        self.release()


def held_lock(folder: PathLike) -> Optional[FolderLock]:
    """The lock this process holds on ``folder``, or ``None``."""
    lock = _HELD.get(os.path.realpath(os.fspath(folder)))
    return lock if lock is not None and lock.held else None


def lock_holder(folder: PathLike) -> Optional[Dict[str, Any]]:
    """The record of the run holding ``folder``'s lock (another process's), or ``None``; changes nothing."""
    folder = os.fspath(folder)
    if held_lock(folder) is not None:
        return None
    path = os.path.join(folder, LOCK_NAME)
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        locked = _flock(descriptor)
        record = _read_record(descriptor)
    finally:
        os.close(descriptor)
    if locked is False or (locked is None and not _stale(record)):
        return record
    return None


@contextlib.contextmanager
def holding(folder: PathLike, *, create: bool = True) -> Iterator[FolderLock]:
    """Holds ``folder``'s lock for the block; reentrant in one process (an outer hold is reused).

    A folder created here is removed again at the end if it is then empty.

    Raises:
        FolderInUseError: If another run holds the lock.
        ValueError: If ``folder`` is a file.
    """
    folder = os.fspath(folder)
    existing = held_lock(folder)
    if existing is not None:
        yield existing
        return
    if os.path.lexists(folder) and not os.path.isdir(folder):
        raise ValueError(f"Output path {folder!r} exists and is not a folder.")
    created = not os.path.exists(folder)
    if created and create:
        os.makedirs(folder)
    lock = FolderLock(folder)
    try:
        lock.acquire()
    except BaseException:
        _remove_if_empty(folder, created)
        raise
    try:
        yield lock
    finally:
        lock.release()
        _remove_if_empty(folder, created)


def _remove_if_empty(folder: str, created: bool) -> None:
    if created:
        with contextlib.suppress(OSError):
            os.rmdir(folder)


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
                    entries = {name: entry for name, entry in document["files"].items() if isinstance(entry, dict)}
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
                _prune(self.folder, os.path.dirname(self._path(name)))
            del self.entries[name]
        return removed


def _prune(top: str, folder: str) -> None:
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
        for name in reversed(placed):
            target = os.path.join(destination, *name.split("/"))
            os.replace(target, os.path.join(staging, *name.split("/")))
            _prune(destination, os.path.dirname(target))
        for name in reversed(moved):
            target = os.path.join(destination, *name.split("/"))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.replace(os.path.join(backup, *name.split("/")), target)
        raise
    finally:
        shutil.rmtree(backup, ignore_errors=True)
        if lock is not None:
            lock.note_temporary(os.path.basename(backup), done=True)
    for name in old:
        _prune(destination, os.path.dirname(os.path.join(destination, *name.split("/"))))
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
        raise _in_use(path, holder)
    if visible_entries(path) and not overwrite:
        raise ValueError(f"Output folder {path!r} is not empty; pass {option} to replace the files tf_ig2 wrote "
                         "there (other files are left as they are).")
    conflicts = Manifest.load(path).foreign(names)
    if conflicts:
        raise ForeignFilesError(foreign_message(path, conflicts))
    return path
