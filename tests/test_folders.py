"""Results folders: one run at a time (the lock, across processes) and only their own files removed."""

import json
import os
import shutil
import socket
import subprocess
import sys

import pytest

from tf_ig2 import folders

from conftest import FOREIGN_NAMES, REPOSITORY, plant_foreign, tree

#: Holds the lock of the folder argv[1] until stdin closes; says "locked" once it holds it.
HOLDER_SCRIPT = """
import sys
from tf_ig2 import folders
lock = folders.FolderLock(sys.argv[1]).acquire()
print("locked", flush=True)
sys.stdin.read()
"""


def python(*arguments, **options):
    environment = dict(os.environ, PYTHONPATH=REPOSITORY)
    return subprocess.Popen([sys.executable, *map(str, arguments)], env=environment, text=True, **options)


@pytest.fixture
def holder(tmp_path):
    """Another process holding the lock of tmp_path / "out"; ended at teardown."""
    folder = tmp_path / "out"
    folder.mkdir()
    process = python("-c", HOLDER_SCRIPT, folder, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert process.stdout.readline().strip() == "locked"
    yield folder, process
    process.stdin.close()
    process.wait(timeout=60)


def test_a_second_process_is_refused_with_one_line_naming_the_first(holder):
    folder, process = holder
    with pytest.raises(folders.FolderInUseError) as raised:
        folders.FolderLock(folder).acquire()
    message = str(raised.value)
    assert "\n" not in message and f"PID {process.pid} on host " in message and "started " in message
    assert "command: " in message and "-c" in message
    assert folders.lock_holder(folder)["pid"] == process.pid
    with pytest.raises(folders.FolderInUseError):
        folders.check_destination(folder, overwrite=True)


def test_the_lock_is_released_and_its_file_removed_when_the_holder_ends(holder):
    folder, process = holder
    process.stdin.close()
    process.wait(timeout=60)
    assert not (folder / folders.LOCK_NAME).exists()
    with folders.FolderLock(folder) as lock:
        assert lock.held and folders.held_lock(folder) is lock
        with pytest.raises(folders.FolderInUseError, match=f"PID {os.getpid()} "):
            folders.FolderLock(folder).acquire()  # one run at a time within a process too
    assert os.listdir(folder) == []


def test_a_stale_lock_of_a_dead_process_is_taken_over_with_its_temporaries(tmp_path):
    dead = python("-c", "pass")
    dead.wait(timeout=60)
    staging = tmp_path / (folders.STAGING_PREFIX + "abc")
    staging.mkdir()
    (staging / "attributions.npy").write_bytes(b"half")
    mine = tmp_path / ".tf_ig2.staging-looks-like-ours-but-unlisted"
    mine.mkdir()
    record = {"pid": dead.pid, "host": os.uname().nodename, "started": "yesterday", "command": "tf-ig2 explain",
              "temporaries": [staging.name, "../escape", "notes.txt"]}
    (tmp_path / folders.LOCK_NAME).write_text(json.dumps(record))
    assert folders.lock_holder(tmp_path) is None
    with folders.FolderLock(tmp_path) as lock:
        assert lock.record["pid"] == os.getpid()
    assert sorted(os.listdir(tmp_path)) == [mine.name]


def test_a_lock_file_without_flock_is_judged_by_pid_and_host(tmp_path, monkeypatch):
    monkeypatch.setattr(folders.lock, "_flock", lambda descriptor: None)  # a filesystem without flock
    alive = {"pid": os.getppid(), "host": os.uname().nodename, "started": "now", "command": "tf-ig2 demo"}
    (tmp_path / folders.LOCK_NAME).write_text(json.dumps(alive))
    with pytest.raises(folders.FolderInUseError, match=f"PID {os.getppid()} .*tf-ig2 demo"):
        folders.FolderLock(tmp_path).acquire()
    elsewhere = dict(alive, pid=1, host="another-host")
    (tmp_path / folders.LOCK_NAME).write_text(json.dumps(elsewhere))
    with pytest.raises(folders.FolderInUseError, match="another-host"):
        folders.FolderLock(tmp_path).acquire()
    dead = python("-c", "pass")
    dead.wait(timeout=60)
    (tmp_path / folders.LOCK_NAME).write_text(json.dumps(dict(alive, pid=dead.pid)))
    with folders.FolderLock(tmp_path):
        pass
    assert os.listdir(tmp_path) == []


def write_staged(folder, files):
    staging = folder / (folders.STAGING_PREFIX + "test")
    for name, data in files.items():
        path = staging / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return staging


def test_publish_replaces_only_its_own_files_and_removes_its_stale_ones(tmp_path):
    plant_foreign(tmp_path)
    before = tree(tmp_path)
    manifest = folders.Manifest.load(tmp_path)
    staging = write_staged(tmp_path, {"a.npy": b"1", "logs/x": b"2", "overlay_001.png": b"3"})
    assert sorted(folders.publish(str(staging), str(tmp_path), manifest)) == ["a.npy", "logs/x", "overlay_001.png"]
    assert tree(tmp_path, FOREIGN_NAMES) == before and (tmp_path / "logs" / "x").read_bytes() == b"2"
    staging = write_staged(tmp_path, {"a.npy": b"new", "logs/y": b"4"})
    folders.publish(str(staging), str(tmp_path), folders.Manifest.load(tmp_path))
    assert (tmp_path / "a.npy").read_bytes() == b"new" and (tmp_path / "logs" / "y").exists()
    assert not (tmp_path / "overlay_001.png").exists() and not (tmp_path / "logs" / "x").exists()
    assert tree(tmp_path, FOREIGN_NAMES) == before
    # A foreign file where a new file goes is refused before anything moves.
    (tmp_path / "a.npy").write_bytes(b"the user's")
    staging = write_staged(tmp_path, {"a.npy": b"newer", "b.npy": b"5"})
    with pytest.raises(folders.ForeignFilesError, match="'a.npy'"):
        folders.publish(str(staging), str(tmp_path), folders.Manifest.load(tmp_path))
    assert (tmp_path / "a.npy").read_bytes() == b"the user's" and not (tmp_path / "b.npy").exists()


def test_publish_failing_half_way_puts_everything_back(tmp_path, monkeypatch):
    plant_foreign(tmp_path)
    staging = write_staged(tmp_path, {"a.npy": b"1", "b.npy": b"2", "logs/x": b"3"})
    folders.publish(str(staging), str(tmp_path), folders.Manifest.load(tmp_path))
    shutil.rmtree(staging)
    before = tree(tmp_path)
    real_replace = os.replace
    for failing in range(1, 6):
        calls = []

        def replace(source, target, calls=calls, failing=failing):
            calls.append(target)
            if len(calls) == failing:
                raise OSError(28, "No space left on device")
            real_replace(source, target)

        staging = write_staged(tmp_path, {"a.npy": b"new", "c.npy": b"4", "logs/y": b"5"})
        monkeypatch.setattr(os, "replace", replace)
        with pytest.raises(OSError, match="No space"):
            folders.publish(str(staging), str(tmp_path), folders.Manifest.load(tmp_path))
        monkeypatch.setattr(os, "replace", real_replace)
        shutil.rmtree(staging)
        assert tree(tmp_path) == before, f"failure at rename {failing}"


def test_a_manifest_never_names_files_outside_its_folder(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("mine")
    folder = tmp_path / "results"
    folder.mkdir()
    entry = folders.describe_file(str(outside))
    (folder / folders.MANIFEST_NAME).write_text(json.dumps({"format": 1, "files": {
        "../outside.txt": entry, str(outside): entry, "inside.txt": entry}}))
    assert sorted(folders.Manifest.load(str(folder)).entries) == ["inside.txt"]


def test_an_unreadable_lock_record_is_taken_over(tmp_path):
    (tmp_path / folders.LOCK_NAME).write_text(json.dumps({"pid": "not a number", "host": socket.gethostname()}))
    lock = folders.FolderLock(str(tmp_path)).acquire()
    try:
        assert lock.record["pid"] == os.getpid()
    finally:
        lock.release()
