"""One run at a time: a folder's lock (``fcntl.flock`` on :data:`~tf_ig2.folders.common.LOCK_NAME`)."""

from __future__ import annotations

import contextlib
import datetime
import errno
import json
import os
import shutil
import socket
import sys
import weakref
from typing import Any, Dict, Iterator, Optional

from tf_ig2.folders.common import BACKUP_PREFIX, LOCK_NAME, STAGING_PREFIX, FolderInUseError, PathLike


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


def in_use_error(folder: str, holder: Dict[str, Any]) -> FolderInUseError:
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
    try:
        pid = int(record["pid"])
    except (TypeError, ValueError):
        return True  # an unreadable record names no process
    return pid != os.getpid() and not _process_alive(pid)


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
            raise in_use_error(self.folder, other.record)
        while True:
            descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            locked = _flock(descriptor)
            previous = _read_record(descriptor)
            if locked is False or (locked is None and not _stale(previous)):
                os.close(descriptor)
                raise in_use_error(self.folder, previous)
            found, opened = None, os.fstat(descriptor)
            with contextlib.suppress(OSError):
                found = os.stat(self.path)
            if found is not None and (found.st_dev, found.st_ino) == (opened.st_dev, opened.st_ino):
                break
            os.close(descriptor)  # the file was removed by its holder meanwhile: lock the new one
        try:
            self._remove_temporaries(previous)
            self.record = {"pid": os.getpid(), "host": socket.gethostname(),
                           "started": datetime.datetime.now().isoformat(timespec="seconds"),
                           "command": _command_line(),
                           "temporaries": []}
            self._descriptor = descriptor
            self._write_record()
        except BaseException:
            os.close(descriptor)  # an error here must not keep the folder locked by this process
            self._descriptor = None
            raise
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
        ValueError: If ``folder`` is a file, or does not exist and ``create`` is false.
    """
    folder = os.fspath(folder)
    existing = held_lock(folder)
    if existing is not None:
        yield existing
        return
    if os.path.lexists(folder) and not os.path.isdir(folder):
        raise ValueError(f"Output path {folder!r} exists and is not a folder.")
    created = not os.path.exists(folder)
    if created and not create:
        raise ValueError(f"No folder to lock: {folder!r} does not exist. Received: folder={folder!r}")
    if created:
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


