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

The package's parts: :mod:`~tf_ig2.folders.common` (names, errors, atomic JSON),
:mod:`~tf_ig2.folders.lock`, :mod:`~tf_ig2.folders.manifest`, :mod:`~tf_ig2.folders.publishing`.
"""


from tf_ig2.folders.common import (
    BACKUP_PREFIX,
    BOOKKEEPING,
    LOCK_NAME,
    MANIFEST_NAME,
    RECOVERED_PREFIX,
    STAGING_PREFIX,
    FolderInUseError,
    ForeignFilesError,
    fsync_directory,
    write_json,
)
from tf_ig2.folders.lock import FolderLock, describe_holder, held_lock, holding, lock_holder
from tf_ig2.folders.manifest import Manifest, describe_file, file_sha1, foreign_message
from tf_ig2.folders.publishing import check_destination, publish, staging_folder, visible_entries

__all__ = ["BACKUP_PREFIX", "BOOKKEEPING", "LOCK_NAME", "MANIFEST_NAME", "RECOVERED_PREFIX", "STAGING_PREFIX",
           "FolderInUseError", "FolderLock", "ForeignFilesError", "Manifest", "check_destination", "describe_file",
           "describe_holder", "file_sha1", "foreign_message", "fsync_directory", "held_lock", "holding",
           "lock_holder", "publish", "staging_folder", "visible_entries", "write_json"]
