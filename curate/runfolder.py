"""The life cycle of an output folder that one run owns: lock, fingerprint, resume, atomic writes.

The curation engine (`curate.engine.folder`) and the trainers (`train.lineage`) both write into a
folder that a rerun of the same command must finish, not redo or mix with another run:
- `RunFolder` holds an exclusive lock (flock, released by the OS if the process is killed) for
  the whole run, waits until no worker process of an earlier (killed) run is left, and decides what to do with what the folder holds: `complete` (this run
  finished), `resume` (this run, unfinished), or `fresh` (empty, or replaced). On object storage,
  where there is no flock, the lock is a `Lease`: an object created only if none exists, naming
  its holder and renewed by a heartbeat; a lease whose heartbeat stopped (its run was killed) is
  taken over once it expires;
- a run is identified by the `fingerprint` of its resolved config (without the options that
  change how it runs, not what it computes) and its inputs; a folder holding another run that
  made progress is refused unless `output.overwrite=true`, and the refusal names what differs;
  before a run is resumed or called complete, the content of the inputs it already used is
  checked (`changed_input`): an input edited in place, even with its size and time restored, is
  another run;
- `write_json_atomic` writes a file under a temporary name, syncs it and renames it: a reader
  sees the old file or the new one, never half of one.
Subclasses say where a run's record lives and what counts as progress.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Self

from curate import fs
from curate.errors import OutputError, naming

logger = logging.getLogger(__name__)

LOCK_FILE = ".lock"
# Every worker process of a run holds a shared lock on this file for its whole life; a new run
# takes it exclusively first, so it never runs beside workers a killed run left (they exit on
# their own within a second of losing their parent: `curate.executors.local`).
WORKERS_LOCK_FILE = ".lock-workers"
WORKERS_WAIT_S = 30.0
_WORKER_LOCKS: list[IO[str]] = []  # held until the worker process exits


def hold_worker_lock(root: Path) -> None:
    """In a worker process: hold the folder's workers lock (shared) until the process ends."""
    handle = open(Path(root) / WORKERS_LOCK_FILE, "a+")
    fcntl.flock(handle, fcntl.LOCK_SH)
    _WORKER_LOCKS.append(handle)


def lock_holders(path: Path) -> list[int]:
    """The processes holding a lock on `path` (Linux: /proc/locks), for error messages."""
    try:
        inode = path.stat().st_ino
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return []
    pids = []
    for line in lines:
        fields = line.split()
        if len(fields) > 5 and fields[1] == "FLOCK" and fields[5].rsplit(":", 1)[-1] == str(inode):
            pids.append(int(fields[4]))
    return sorted(set(pids) - {os.getpid()})


# A model folder written by a training run holds a copy of that run's record (train.lineage): the
# curate app reads it to record which model generated or scored its rows.
MODEL_LINEAGE = "thresher_lineage.json"


def read_model_lineage(folder: str | Path) -> dict[str, Any] | None:
    """The training record a model folder carries (None for a model from elsewhere)."""
    file = Path(folder) / MODEL_LINEAGE
    return json.loads(file.read_text()) if file.is_file() else None


def write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with naming(path):
        path.parent.mkdir(parents=True, exist_ok=True)
    with naming(path), open(tmp, "w") as handle:
        json.dump(data, handle, indent=2, default=str)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def without_keys(config: dict[str, Any], dotted_keys: Iterable[str]) -> dict[str, Any]:
    """A copy of `config` without the given dotted keys (missing ones are ignored)."""
    config = json.loads(json.dumps(config, default=str))
    for key in dotted_keys:
        *parents, name = key.split(".")
        node: Any = config
        for parent in parents:
            node = node.get(parent, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node.pop(name, None)
    return config


def fingerprint(config: dict[str, Any], inputs: Any) -> str:
    """A short hash of a run's config and the identity of its inputs."""
    blob = json.dumps({"config": config, "inputs": inputs}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def differing_keys(old: Any, new: Any, prefix: str = "") -> list[str]:
    """The dotted keys whose values differ between two configs, with both values."""
    if isinstance(old, dict) and isinstance(new, dict):
        found = []
        for key in sorted(set(old) | set(new), key=str):
            found += differing_keys(old.get(key, "<unset>"), new.get(key, "<unset>"), f"{prefix}{key}.")
        return found
    return [] if old == new else [f"{prefix.rstrip('.')}: {old!r} -> {new!r}"]


class Lease:
    """The lock of an output folder on object storage: the object `<folder>/.lock`, created only if
    none exists (a conditional PUT), holding who holds it (host, pid) and when it last renewed it.
    A thread renews it every `renew_s`. A lease is stale when it was not renewed for `ttl_s` (its
    run died on another machine), or at once when its holder is a process of this machine that is
    gone (a killed run, rerun here); a stale lease is taken over (replaced, then read back after a
    second: the last writer holds it)."""

    ttl_s = 120.0
    renew_s = 20.0

    def __init__(self, location: str, what: str):
        self.location, self.what = fs.join(location, LOCK_FILE), what
        self.id = f"{socket.gethostname()} pid {os.getpid()} {uuid.uuid4().hex[:8]}"  # host, pid, this run
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    def body(self) -> bytes:
        now = time.time()
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))
        return json.dumps(
            {
                "holder": self.id,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "started": started,
                "renewed": now,
                "ttl_s": self.ttl_s,
            }
        ).encode()

    def stale(self, held: dict[str, Any]) -> bool:
        if held.get("host") == socket.gethostname() and isinstance(held.get("pid"), int):
            try:
                os.kill(held["pid"], 0)
            except ProcessLookupError:
                return True  # its process is gone: killed
            except PermissionError:
                pass  # alive, another user's
        return time.time() - float(held.get("renewed", 0)) >= float(held.get("ttl_s", self.ttl_s))

    def current(self) -> dict[str, Any] | None:
        try:
            return json.loads(fs.read_bytes(self.location))
        except FileNotFoundError:
            return None
        except ValueError:  # unreadable: treat as expired
            return {"holder": "unknown", "renewed": 0.0}

    def acquire(self) -> None:
        if not fs.create_exclusive(self.location, self.body()):
            held = self.current()
            if held is not None and not self.stale(held):
                raise OutputError(
                    f"output.dir '{fs.parent(self.location)}' is in use by another {self.what} ({held.get('holder')}, "
                    f"lease renewed {time.time() - float(held.get('renewed', 0)):.0f} s ago); wait for it to finish "
                    "or choose another output.dir"
                )
            logger.warning("%s: taking over an expired lease (%s)", self.location, held)
            fs.write_bytes(self.location, self.body())
            time.sleep(1.0)  # another run taking it over at the same moment: the last writer wins
            held = self.current()
            if held is None or held.get("holder") != self.id:
                raise OutputError(f"output.dir '{fs.parent(self.location)}' was taken by another {self.what}")
        self.thread = threading.Thread(target=self.renew, name="lease", daemon=True)
        self.thread.start()

    def renew(self) -> None:
        while not self.stop.wait(self.renew_s):
            try:
                held = self.current()
                if held is None or held.get("holder") != self.id:
                    logger.error("%s: the lease was taken by %s", self.location, held and held.get("holder"))
                    return
                fs.write_bytes(self.location, self.body())
            except OSError:  # a network error: try again at the next beat
                logger.warning("%s: the lease could not be renewed", self.location, exc_info=True)

    def release(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join()
        held = self.current()
        if held is not None and held.get("holder") == self.id:
            fs.remove(self.location)


@dataclass
class RunRecord:
    """What a folder says about the run it holds."""

    fingerprint: str | None  # None: a record this version cannot read (another format version)
    config: dict[str, Any] | None
    finished: bool


class RunFolder:
    """An output folder owned by one run at a time (see the module docstring).

    Use as a context manager to hold the lock; then `open` decides complete / resume / fresh.
    """

    what = "run"  # how error messages name the runs this folder holds
    workers_wait_s = WORKERS_WAIT_S  # how long a new run waits for an earlier run's workers to end

    def __init__(self, root: str | Path, mirror: fs.Mirror | None = None):
        self.root = Path(root)
        self.mirror = mirror or fs.Mirror(self.root)  # a folder on object storage: its local staging
        self.handle: IO[str] | None = None
        self.lease: Lease | None = None

    # -- what subclasses define

    def previous(self) -> RunRecord | None:
        """The record of the run this folder holds, or None if it holds none."""
        raise NotImplementedError

    def has_progress(self) -> bool:
        """True if the folder holds work that replacing it would lose."""
        raise NotImplementedError

    def begin(self, fingerprint: str, config: dict[str, Any]) -> None:
        """Write the record of a fresh run (called on an empty folder)."""
        raise NotImplementedError

    def changed_input(self) -> str | None:
        """What changed in the content of an input the run already used (the fingerprint holds only
        its path, size and modification time), or None. Checked before a run is resumed or called
        complete; by default nothing is checked."""
        return None

    # -- the life cycle

    def __enter__(self) -> Self:
        self.lock()
        return self

    def __exit__(self, *exc: object) -> None:
        self.unlock()

    def lock(self) -> None:
        """Hold the folder's lock, then wait (at most `workers_wait_s`) until no worker process of
        an earlier run is left in it. A folder that cannot be written is one line naming it. On
        object storage: a `Lease`, and a fresh staging folder (the store holds what earlier runs did)."""
        if self.mirror.remote is not None:
            self.lease = Lease(self.mirror.remote, self.what)
            self.lease.acquire()
            fs.remove(self.root, recursive=True)
            self.root.mkdir(parents=True, exist_ok=True)
            return
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            handle = open(self.root / LOCK_FILE, "a+")
        except OSError as error:
            raise OutputError(f"output.dir '{self.root}' cannot be written: {error.strerror or error}") from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise OutputError(
                f"output.dir '{self.root}' is in use by another {self.what} ({holder}); "
                "wait for it to finish or choose another output.dir"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}, started {time.strftime('%Y-%m-%d %H:%M:%S')}")
        handle.flush()
        self.handle = handle
        try:
            self.wait_for_workers(self.workers_wait_s)
        except BaseException:
            self.unlock()
            raise

    def wait_for_workers(self, timeout_s: float) -> None:
        """Take the workers lock exclusively (then let it go): no worker of an earlier run is alive."""
        path = self.root / WORKERS_LOCK_FILE
        with open(path, "a+") as workers:
            deadline = time.monotonic() + timeout_s
            while True:
                try:
                    fcntl.flock(workers, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    fcntl.flock(workers, fcntl.LOCK_UN)
                    return
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        holders = ", ".join(map(str, lock_holders(path))) or "unknown"
                        raise OutputError(
                            f"output.dir '{self.root}' is still used by worker processes of an earlier run "
                            f"(pids: {holders}); they end when they notice their run is gone: wait, or end them"
                        ) from None
                    time.sleep(0.1)

    def unlock(self) -> None:
        if self.lease is not None:
            self.lease.release()
            self.lease = None
            fs.remove(self.root, recursive=True)  # the staging folder: everything in it is published
        if self.handle is not None:
            fcntl.flock(self.handle, fcntl.LOCK_UN)
            self.handle.close()
            self.handle = None

    def is_empty(self) -> bool:
        """Whether the folder holds nothing but its locks, temporary files and empty folders (what a
        run killed while writing its first file leaves: `_work/run.json.tmp`)."""
        if self.mirror.remote is not None:  # an object store has no temporary names, nor empty folders
            return not any(name not in (LOCK_FILE, WORKERS_LOCK_FILE) for name in self.mirror.children())
        return not any(
            path.name not in (LOCK_FILE, WORKERS_LOCK_FILE) and not path.name.endswith(".tmp") and not path.is_dir()
            for path in self.root.rglob("*")
        )

    def clear(self) -> None:
        """Remove everything in the folder but its locks."""
        for name in self.mirror.children():
            if name not in (LOCK_FILE, WORKERS_LOCK_FILE):
                self.mirror.remove(self.root / name, recursive=True)

    def open(self, fingerprint: str, config: dict[str, Any], overwrite: bool, resume: bool = True) -> str:
        """Decide what this run does with the folder: 'complete', 'resume' or 'fresh'.

        A folder holding another run (or this run with `resume` off) that made progress is
        refused unless `overwrite`; one where nothing was done yet is replaced.
        """
        previous = self.previous()
        if previous is None and not self.is_empty():
            raise OutputError(
                f"output.dir '{self.root}' is not empty and holds no Thresher {self.what}; choose an empty folder"
            )
        if previous is not None and not overwrite:
            same = previous.fingerprint == fingerprint
            change = self.changed_input() if same and resume else None
            if same and resume and change is None:
                return "complete" if previous.finished else "resume"
            if self.has_progress():
                reason = self.describe(previous, config, same, change)
                raise OutputError(
                    f"output.dir '{self.root}' {reason}; set output.overwrite=true or choose another output.dir"
                )
        if not self.is_empty():
            self.clear()
        self.begin(fingerprint, config)
        return "fresh"

    def describe(self, previous: RunRecord, config: dict[str, Any], same: bool, change: str | None = None) -> str:
        """Why the folder cannot be reused, naming what differs."""
        state = "a finished" if previous.finished else "an unfinished"
        if change is not None:
            return f"holds {state} {self.what} of the same config on input that has changed since ({change})"
        if same:
            return f"holds checkpoints of this {self.what} and resume is off"
        if previous.fingerprint is None or previous.config is None:
            return f"holds {state} {self.what} written by another version of Thresher"
        differences = differing_keys(previous.config, config)
        if not differences:
            return f"holds {state} {self.what} of the same config on other input (files changed)"
        shown = "; ".join(differences[:5]) + (f"; and {len(differences) - 5} more" if len(differences) > 5 else "")
        if all(": '<unset>' -> " in difference for difference in differences):
            # Only options the earlier run did not have: it was written by an earlier version.
            return f"holds {state} {self.what} written by an earlier version of Thresher, before these options existed ({shown})"
        return f"holds {state} {self.what} of a different config ({shown})"
