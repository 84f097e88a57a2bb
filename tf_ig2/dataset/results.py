"""The results folder of :func:`~tf_ig2.dataset.explain_dataset`: its on-disk format, read and written.

A folder holds ``index.json`` (the settings, the arrays stored per input and the finished shards)
and, per shard of ``shard_size`` inputs, one ``<array>.<shard:05d>.npy`` file per stored array.
Every file is written under a temporary name, synced and renamed; the index is replaced after
the shard's files, so a folder always lists only whole shards. A run holds the folder's lock
and lists every file it writes in the folder's manifest (:mod:`tf_ig2.folders`): starting over
or resuming removes only listed files that still match, and a file it did not write where a
result would go is refused.

:func:`load_results` is the one reader of a folder; :func:`merge_shards` concatenates an array's
shards into one ``.npy`` file through a memory map (memory bounded by one shard), for the
``<array>.merged.npy`` cache of :func:`load_results` and for the command line's
``attributions.npy``. JSON records are written by :func:`tf_ig2.folders.write_json`. No TensorFlow here.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from tf_ig2 import defaults, folders
from tf_ig2.methods.registry import METHODS
from tf_ig2.validation import one_line

logger = logging.getLogger(__package__)

PathLike = Union[str, "os.PathLike[str]"]

#: The index file of a results folder.
INDEX_NAME = "index.json"
#: Records which merged (concatenated) arrays :func:`load_results` has cached.
MERGED_NAME = "merged.json"
#: Version of the folder layout written in the index.
FORMAT_VERSION = 1
#: Arrays stored for every input, whatever the method and options.
ALWAYS_STORED = ("attributions", "target_scores", "counterfactual_scores", "delta")
#: Settings differences listed in a message, at most.
MAX_LISTED_DIFFERENCES = 6

_SHARD_PATTERN = re.compile(r"^(?P<name>[a-z_]+)\.(?P<shard>\d{5,})\.npy(\.tmp)?$")
_MERGED_PATTERN = re.compile(r"^[a-z_]+\.merged\.npy(\.tmp)?$")
_MMAP_MODES = (None, "r", "r+", "c")
#: Files rewritten as a run goes: listed in the manifest as written whatever they hold.
_REWRITTEN = (INDEX_NAME, INDEX_NAME + ".tmp", MERGED_NAME)


# -- writing files safely --------------------------------------------------------------------------
def _write_array(path: str, array: np.ndarray) -> None:
    temporary = path + ".tmp"
    with open(temporary, "wb") as handle:
        np.save(handle, array, allow_pickle=False)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def inputs_sha1(inputs: np.ndarray) -> str:
    """The checksum of a shard's ``(n, *S)`` inputs recorded in the index (float32 bytes)."""
    return hashlib.sha1(np.ascontiguousarray(inputs, np.float32).tobytes()).hexdigest()


# -- settings --------------------------------------------------------------------------------------
def settings_differences(stored: Any, wanted: Any, prefix: str = "") -> List[str]:
    """The settings that differ between two records, as ``"name: stored -> wanted"``.

    Dicts are compared key by key, nested dicts with dotted names (``options.steps: 6 -> 7``);
    a key missing on one side counts as ``None``.
    """
    if isinstance(stored, dict) and isinstance(wanted, dict):
        found = []
        for key in sorted(set(stored) | set(wanted)):
            found += settings_differences(stored.get(key), wanted.get(key), f"{prefix}{key}.")
        return found
    return [] if stored == wanted else [f"{prefix.rstrip('.')}: {stored!r} -> {wanted!r}"]


def with_older_records(stored: Dict[str, Any]) -> Dict[str, Any]:
    """Stored settings with the options that older folders did not record filled in.

    An option added later declares what the runs recorded without it did
    (``option(older_records=...)`` in :mod:`tf_ig2.methods.settings`); a folder written before it
    existed then compares equal to a run asking for that value.
    """
    method, options = stored.get("method"), stored.get("options")
    if method not in METHODS or not isinstance(options, dict):
        return stored
    older = METHODS[method].settings.older_record_values()
    return {**stored, "options": {**older, **options}}


def describe_differences(differences: Sequence[str]) -> str:
    """The first :data:`MAX_LISTED_DIFFERENCES` differences joined by ``"; "`` for a message."""
    shown = "; ".join(differences[:MAX_LISTED_DIFFERENCES])
    return shown + ("; ..." if len(differences) > MAX_LISTED_DIFFERENCES else "")


# -- the folder --------------------------------------------------------------------------------------
def _shard_name(name: str, shard: int) -> str:
    return f"{name}.{shard:05d}.npy"


def _read_index(path: str) -> Optional[Dict[str, Any]]:
    index_path = os.path.join(path, INDEX_NAME)
    if not os.path.exists(index_path):
        return None
    try:
        with open(index_path, encoding="utf-8") as handle:
            index = json.load(handle)
    except (OSError, ValueError) as error:
        raise ValueError(f"`output_dir` holds an unreadable {INDEX_NAME} ({error}); pass overwrite=True to start "
                         f"over. Received: output_dir={path!r}") from error
    if not isinstance(index, dict) or index.get("format") != FORMAT_VERSION or "settings" not in index:
        raise ValueError(f"`output_dir` holds a {INDEX_NAME} that explain_dataset did not write (or of another "
                         f"format); pass overwrite=True to replace it. Received: output_dir={path!r}")
    return index


def _targets(path: str, arrays: Sequence[str]) -> List[str]:
    """The entries of ``path`` at names a run storing ``arrays`` writes (shards, merged arrays, index)."""
    found = []
    for entry in os.listdir(path):
        shard = _SHARD_PATTERN.match(entry)
        merged = _MERGED_PATTERN.match(entry)
        if entry in (INDEX_NAME, MERGED_NAME, INDEX_NAME + ".tmp", MERGED_NAME + ".tmp") or (
                shard and shard.group("name") in arrays) or (merged and entry.split(".")[0] in arrays):
            found.append(entry)
    return found


def _manifest(path: str) -> folders.Manifest:
    """The folder's manifest; a folder written before manifests existed has its index vouch for its shards."""
    manifest = folders.Manifest.load(path)
    if manifest.existed:
        return manifest
    try:
        index = _read_index(path)
    except ValueError:
        return manifest
    if index is not None:
        names = [INDEX_NAME] + [_shard_name(name, shard["shard"]) for shard in index["shards"]
                                for name in index["arrays"]]
        names += [MERGED_NAME] + [f"{name}.merged.npy" for name in index["arrays"]]
        manifest.mark_pending(name for name in names if os.path.isfile(os.path.join(path, name)))
    return manifest


#: Every array a run may store, whatever its settings.
ALL_ARRAYS = ALWAYS_STORED + ("targets", "labels", "representation_distance", "counterfactuals")


def foreign_files(path: PathLike, arrays: Sequence[str] = ALL_ARRAYS) -> List[str]:
    """The files in ``path`` at names a run storing ``arrays`` would write that no run wrote there."""
    path = os.fspath(path)
    if not os.path.isdir(path):
        return []
    return _manifest(path).foreign(_targets(path, arrays))


def discard(path: PathLike) -> None:
    """Removes the files runs wrote in the results folder ``path`` (its manifest's), the manifest too.

    Every other file is left; so is the folder.

    Raises:
        tf_ig2.folders.FolderInUseError: If another run holds the folder's lock.
    """
    path = os.fspath(path)
    if not os.path.isdir(path):
        return
    with folders.holding(path, create=False):
        _manifest(path).remove()
        with contextlib.suppress(OSError):
            os.remove(os.path.join(path, folders.MANIFEST_NAME))


class ResultsFolder:
    """A results folder and its index: the settings, the stored arrays and the finished shards.

    :meth:`read` opens a folder to read; :meth:`open` opens one to write (checking the settings
    of results already there); :meth:`add_shard` and :meth:`finish` write.

    Attributes:
        path: The folder.
        index: The index, as stored in ``index.json``.
    """

    def __init__(self, path: str, index: Dict[str, Any], manifest: Optional[folders.Manifest] = None,
                 lock: Optional[folders.FolderLock] = None):
        self.path = path
        self.index = index
        self.manifest = manifest if manifest is not None else folders.Manifest.load(path)
        self.lock = lock

    @classmethod
    def read(cls, path: PathLike) -> Optional["ResultsFolder"]:
        """The results folder at ``path``, or ``None`` when it holds no index.

        Raises:
            ValueError: If the index is unreadable or was not written by ``explain_dataset``.
        """
        path = os.fspath(path)
        index = _read_index(path)
        return None if index is None else cls(path, index)

    @classmethod
    def open(cls, path: str, settings: Dict[str, Any], shard_size: Optional[int],
             overwrite: bool) -> "ResultsFolder":
        """Takes the lock of ``path`` and opens it to write results of ``settings``, continuing
        results of the same settings; :meth:`close` releases the lock.

        Raises:
            ValueError: If ``path`` is a file, holds files this module did not write where results
                would go, or holds finished results of other settings (or an unreadable index)
                and ``overwrite`` is false.
            tf_ig2.folders.FolderInUseError: If another run holds the folder's lock.
        """
        if os.path.exists(path) and not os.path.isdir(path):
            raise ValueError(f"`output_dir` must be a folder. Received: output_dir={path!r}, a file")
        os.makedirs(path, exist_ok=True)
        lock = None if folders.held_lock(path) is not None else folders.FolderLock(path).acquire()
        try:
            return cls._open_locked(path, settings, shard_size, overwrite, lock)
        except BaseException:
            if lock is not None:
                lock.release()
            raise

    @classmethod
    def _open_locked(cls, path: str, settings: Dict[str, Any], shard_size: Optional[int], overwrite: bool,
                     lock: Optional[folders.FolderLock]) -> "ResultsFolder":
        manifest = _manifest(path)
        conflicts = manifest.foreign(_targets(path, settings.get("arrays", ())))
        if conflicts:
            raise ValueError(f"{folders.foreign_message(path, conflicts)} Received: output_dir={path!r}")
        try:
            index = _read_index(path)
        except ValueError:
            if not overwrite:
                raise
            index = None
        if index is not None and not overwrite:
            wanted_shard_size = shard_size or index["shard_size"]
            differences = settings_differences(with_older_records(index["settings"]), settings)
            if wanted_shard_size != index["shard_size"]:
                differences.append(f"shard_size: {index['shard_size']} -> {wanted_shard_size}")
            if differences and not index["shards"]:
                logger.info("%s holds no finished shard yet; starting over with the new settings", path)
                overwrite = True
            elif differences:
                raise ValueError(
                    f"`output_dir` holds results of other settings ({describe_differences(differences)}). Pass "
                    f"overwrite=True to replace them or choose another folder. Received: output_dir={path!r}"
                )
            if not overwrite:
                folder = cls(path, index, manifest, lock)
                folder._check_files()
                folder._remove_unfinished()
                return folder
        manifest.remove()
        index = {
            "format": FORMAT_VERSION,
            "settings": settings,
            "shard_size": shard_size or defaults.DATASET_SHARD_SIZE,
            "arrays": {},
            "shards": [],
            "count": 0,
            "complete": False,
        }
        folder = cls(path, index, manifest, lock)
        folder.save()
        return folder

    def close(self) -> None:
        """Lists the files written last in the manifest and releases the folder's lock."""
        try:
            if self.manifest.entries or self.manifest.existed:
                self.manifest.complete_pending(_REWRITTEN)
                self.manifest.save()
        except OSError as error:
            logger.warning("could not update the manifest of %s (%s)", self.path, error)
        finally:
            if self.lock is not None:
                self.lock.release()
                self.lock = None

    @property
    def count(self) -> int:
        """Inputs explained in finished shards."""
        return int(self.index["count"])

    @property
    def complete(self) -> bool:
        """Whether the whole input stream has been explained."""
        return bool(self.index["complete"])

    @property
    def shard_size(self) -> int:
        """Inputs per shard (the last one may hold fewer)."""
        return int(self.index["shard_size"])

    @property
    def shards(self) -> int:
        """Finished shards."""
        return len(self.index["shards"])

    @property
    def arrays(self) -> Tuple[str, ...]:
        """The arrays stored so far (empty before the first shard)."""
        return tuple(self.index["arrays"])

    def per_input_shape(self, name: str) -> Tuple[int, ...]:
        """The shape of array ``name`` for one input, e.g. ``S`` for the attributions."""
        return tuple(int(side) for side in self.index["arrays"][name]["shape"])

    def dtype(self, name: str) -> np.dtype:
        """The dtype of array ``name``."""
        return np.dtype(self.index["arrays"][name]["dtype"])

    def shard_paths(self, name: str) -> List[str]:
        """The files of array ``name``, one per finished shard, in order.

        Raises:
            ValueError: If one of them is missing.
        """
        paths = [os.path.join(self.path, _shard_name(name, shard["shard"])) for shard in self.index["shards"]]
        missing = [path for path in paths if not os.path.exists(path)]
        if missing:
            raise ValueError(f"`output_dir` is missing finished shard files, e.g. {missing[0]!r}; explain the "
                             f"dataset again with overwrite=True. Received: output_dir={self.path!r}")
        return paths

    def _finished_names(self) -> set:
        return {_shard_name(name, shard["shard"]) for shard in self.index["shards"] for name in self.index["arrays"]}

    def _check_files(self) -> None:
        for name in sorted(self._finished_names()):
            if not os.path.exists(os.path.join(self.path, name)):
                raise ValueError(f"`output_dir` misses the finished shard file {name!r}; pass overwrite=True to start "
                                 f"over. Received: output_dir={self.path!r}")

    def _remove_unfinished(self) -> None:
        """Removes the files this module wrote here that no finished shard lists (unfinished shards)."""
        keep = self._finished_names() | {INDEX_NAME, MERGED_NAME}
        keep |= {f"{name}.merged.npy" for name in self.index["arrays"]}
        self.manifest.remove([name for name in self.manifest.entries if name not in keep])
        self.manifest.complete_pending(_REWRITTEN)
        self.manifest.entries[INDEX_NAME] = {"pending": True}
        self.manifest.save()

    def save(self) -> None:
        """Writes the index (listed in the manifest as a file this module rewrites)."""
        if any(self.manifest.entries.get(name) != {"pending": True} for name in (INDEX_NAME, INDEX_NAME + ".tmp")):
            self.manifest.mark_pending([INDEX_NAME, INDEX_NAME + ".tmp"])  # a stop while writing leaves the .tmp
            self.manifest.save()
        folders.write_json(os.path.join(self.path, INDEX_NAME), self.index)

    def add_shard(self, rows: Dict[str, np.ndarray], inputs_checksum: str) -> None:
        """Writes one shard: ``rows`` holds ``(n, ...)`` per stored array; then lists it in the index.

        Raises:
            ValueError: If an array's shape per input differs from the earlier shards'.
        """
        shard = len(self.index["shards"])
        count = len(rows["attributions"])
        arrays = self.index["arrays"]
        self.manifest.complete_pending(_REWRITTEN)
        written = [_shard_name(name, shard) for name in rows]
        self.manifest.mark_pending([INDEX_NAME, INDEX_NAME + ".tmp"] + written + [name + ".tmp" for name in written])
        self.manifest.save()
        for name, values in rows.items():
            entry = {"dtype": values.dtype.str, "shape": list(values.shape[1:])}
            if name not in arrays:
                arrays[name] = entry
            elif arrays[name]["shape"] != entry["shape"]:
                raise ValueError(f"`{name}` must have the same shape per input in every batch "
                                 f"({arrays[name]['shape']}, e.g. the same number of references R). "
                                 f"Received: {entry['shape']}")
            _write_array(os.path.join(self.path, _shard_name(name, shard)), values)
        folders.fsync_directory(self.path)
        self.index["shards"].append({"shard": shard, "count": count, "inputs_sha1": inputs_checksum})
        self.index["count"] = self.count + count
        self.save()

    def finish(self) -> None:
        """Marks the results complete."""
        self.index["complete"] = True
        self.save()
        self.manifest.complete_pending(_REWRITTEN)
        self.manifest.save()


class ShardWriter:
    """Collects per-input rows and writes a shard of ``shard_size`` inputs whenever it has one.

    Raises:
        ValueError: If the folder holds a number of inputs that is not a whole number of shards.
    """

    def __init__(self, folder: ResultsFolder, shard_size: int, start: int):
        self.folder = folder
        self.shard_size = shard_size
        self.pending: Dict[str, List[np.ndarray]] = {}
        self.pending_inputs: List[np.ndarray] = []
        self.count = 0
        if start % shard_size and not folder.complete:
            raise ValueError(f"`output_dir` holds {start} inputs, not a whole number of shards of {shard_size}")

    @property
    def shards(self) -> int:
        """Finished shards in the folder."""
        return self.folder.shards

    def add(self, rows: Dict[str, np.ndarray], inputs: np.ndarray) -> None:
        """Adds ``(B, ...)`` rows per stored array for the ``(B, *S)`` ``inputs``; writes full shards."""
        for name, values in rows.items():
            self.pending.setdefault(name, []).append(values)
        self.pending_inputs.append(inputs)
        self.count += len(inputs)
        while self.count >= self.shard_size:
            self._write(self.shard_size)

    def _write(self, count: int) -> None:
        rows = {}
        for name, parts in self.pending.items():
            values = np.concatenate(parts) if len(parts) > 1 else parts[0]
            rows[name], rest = values[:count], values[count:]
            self.pending[name] = [rest] if len(rest) else []
        inputs = np.concatenate(self.pending_inputs) if len(self.pending_inputs) > 1 else self.pending_inputs[0]
        self.pending_inputs = [inputs[count:]] if len(inputs) > count else []
        self.folder.add_shard(rows, inputs_sha1(inputs[:count]))
        self.count -= count

    def finish(self) -> None:
        """Writes the last, partial shard and marks the results complete."""
        if self.count:
            self._write(self.count)
        self.folder.finish()


# -- reading -------------------------------------------------------------------------------------------
def _existing(output_dir: PathLike) -> ResultsFolder:
    folder = ResultsFolder.read(output_dir)
    if folder is None:
        raise ValueError(f"`output_dir` holds no {INDEX_NAME}, so no results of explain_dataset. "
                         f"Received: output_dir={os.fspath(output_dir)!r}")
    return folder


def _concatenate(paths: Sequence[str], dtype: np.dtype, shape: Tuple[int, ...], destination: str) -> None:
    """Writes the arrays in ``paths`` one after another into the ``.npy`` file ``destination``."""
    target = np.lib.format.open_memmap(destination, mode="w+", dtype=dtype, shape=shape)
    low = 0
    for path in paths:
        part = np.load(path, mmap_mode="r")
        target[low:low + len(part)] = part
        low += len(part)
    target.flush()
    del target


def merge_shards(output_dir: PathLike, name: str, destination: PathLike) -> Tuple[int, ...]:
    """Concatenates the finished shards of array ``name`` into the ``.npy`` file ``destination``.

    The file is written through a memory map, a shard at a time, so memory stays bounded by one
    shard whatever the number of inputs.

    Args:
        output_dir: The results folder.
        name: A stored array, e.g. ``"attributions"``.
        destination: The ``.npy`` file to write (replaced if it exists).

    Returns:
        The shape of the merged array, ``(N, *per-input shape)``.

    Raises:
        ValueError: If ``output_dir`` holds no results, no array ``name`` or misses a shard file.
    """
    folder = _existing(output_dir)
    if name not in folder.arrays:
        raise ValueError(f"`name` must be an array stored in `output_dir`, one of {list(folder.arrays)}. "
                         f"Received: name={name!r}")
    shape = (folder.count, *folder.per_input_shape(name))
    _concatenate(folder.shard_paths(name), folder.dtype(name), shape, os.fspath(destination))
    return shape


def _merged(folder: ResultsFolder, name: str, paths: Sequence[str], mmap_mode: str) -> np.ndarray:
    """``<name>.merged.npy``: the shards concatenated on disk, rebuilt when shards were added.

    Written only when the folder's lock is free and no file this module did not write is at its
    name; else (and in a read-only folder) the shards are concatenated in memory.
    """
    merged_name = f"{name}.merged.npy"
    merged_path = os.path.join(folder.path, merged_name)
    record_path = os.path.join(folder.path, MERGED_NAME)
    try:
        lock = None if folders.held_lock(folder.path) is not None else folders.FolderLock(folder.path).acquire()
    except (OSError, ValueError) as error:
        logger.info("not caching %s in %s (%s); concatenating it in memory", merged_name, folder.path,
                    one_line(error))
        return np.concatenate([np.load(path, mmap_mode="r") for path in paths])
    try:
        manifest = _manifest(folder.path)
        if manifest.foreign([merged_name, MERGED_NAME, merged_name + ".tmp"]):
            logger.warning("%s holds files explain_dataset did not write at %s or %s; concatenating %s in memory",
                           folder.path, merged_name, MERGED_NAME, name)
            return np.concatenate([np.load(path, mmap_mode="r") for path in paths])
        record: Dict[str, Any] = {}
        if os.path.exists(record_path):
            with contextlib.suppress(OSError, ValueError):
                with open(record_path, encoding="utf-8") as handle:
                    record = json.load(handle)
        wanted = {"shards": len(paths), "count": folder.count}
        if record.get(name) == wanted and os.path.exists(merged_path):
            return np.load(merged_path, mmap_mode=mmap_mode)
        try:
            manifest.mark_pending([merged_name, merged_name + ".tmp", MERGED_NAME])
            manifest.save()
            temporary = merged_path + ".tmp"
            _concatenate(paths, folder.dtype(name), (folder.count, *folder.per_input_shape(name)), temporary)
            os.replace(temporary, merged_path)
            record[name] = wanted
            folders.write_json(record_path, record)
            del manifest.entries[merged_name + ".tmp"]
            manifest.save()
        except OSError as error:  # a read-only folder: concatenate in memory instead
            logger.warning("could not write %s (%s); concatenating %s in memory", merged_path, error, name)
            return np.concatenate([np.load(path, mmap_mode="r") for path in paths])
        return np.load(merged_path, mmap_mode=mmap_mode)
    finally:
        if lock is not None:
            lock.release()


def load_results(output_dir: PathLike, *, mmap_mode: Optional[str] = "r",
                 names: Optional[Sequence[str]] = None) -> Dict[str, np.ndarray]:
    """Loads the results :func:`~tf_ig2.dataset.explain_dataset` wrote, shards concatenated.

    Args:
        output_dir: The results folder.
        mmap_mode: ``"r"`` (default): arrays with more than one value per input (attributions,
            counterfactuals, ...) come memory-mapped; when the folder has several shards they are
            concatenated once into ``<name>.merged.npy`` (bounded memory) and reused afterwards.
            ``None``: everything is read into memory. Per-input scalars are always in memory.
        names: The arrays to load; ``None`` for all of them.

    Returns:
        A dict of arrays, each with the N explained inputs (so far) first: ``attributions``
        ``(N, *S)``, ``target_scores``, ``counterfactual_scores``, ``delta`` ``(N,)``, and when
        stored ``targets`` ``(N,)``, ``labels``, ``representation_distance`` ``(N, R, 2)``,
        ``counterfactuals`` ``(N, R, *S)``.

    Raises:
        ValueError: If ``output_dir`` holds no results, a listed shard is missing, or ``names``
            names an array that is not stored.
    """
    if mmap_mode not in _MMAP_MODES:
        raise ValueError(f"`mmap_mode` must be None, 'r', 'r+' or 'c'. Received: mmap_mode={mmap_mode!r}")
    folder = _existing(output_dir)
    stored = folder.arrays
    if names is None:
        names = stored
    elif isinstance(names, str) or not all(isinstance(name, str) and name in stored for name in names):
        raise ValueError(f"`names` must be a sequence of stored arrays, some of {list(stored)}. "
                         f"Received: names={names!r}")
    results: Dict[str, np.ndarray] = {}
    for name in names:
        paths = folder.shard_paths(name)
        wide = int(np.prod(folder.per_input_shape(name), dtype=np.int64)) > 1
        if not paths:
            results[name] = np.empty((0,) + folder.per_input_shape(name), folder.dtype(name))
        elif len(paths) == 1:
            results[name] = np.load(paths[0], mmap_mode=mmap_mode if wide else None)
        elif mmap_mode is None or not wide:
            results[name] = np.concatenate([np.load(path, mmap_mode="r") for path in paths])
        else:
            results[name] = _merged(folder, name, paths, mmap_mode)
    return results

