"""One driver per campaign folder: an exclusive ``flock`` on ``<workdir>/.pyacemaker.lock``.

Two drivers on one folder would label the same candidates twice and overwrite each other's
``state.json``. The lock is held for the driver's whole life through an open file; the
kernel releases it when the process ends in any way (SIGKILL included), so a stale lock
never has to be removed by hand. The file's content (pid, host, start time, command) is
only for people and for the error message: whether the folder is in use is decided by the
lock alone, never by the content.

Limits of ``flock`` on shared file systems:

* NFS: Linux clients map ``flock`` onto NFS byte-range locks, which the server sees from
  every client, unless the folder is mounted with ``local_lock=flock`` or ``nolock``
  (then a lock is seen on one node only). Some old servers/clients give node-local locks
  too.
* Lustre: ``flock`` works across nodes only with the ``flock`` mount option; with
  ``localflock`` it is node-local, and without either the call fails (ENOSYS). Then the
  driver warns and runs without a lock.

Where the lock may be node-local, the pid and host in the file let a user check by hand
(``ssh HOST ps -p PID``) before starting a second driver from another node.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

LOCK_FILE = ".pyacemaker.lock"


class CampaignLocked(RuntimeError):
    """Another driver holds the campaign folder's lock; the message names it."""


@dataclass
class CampaignLock:
    """The held lock; keep it referenced for as long as the driver runs."""

    path: Path
    handle: IO[str] | None
    warning: str | None = None  # set when the file system cannot lock (run unlocked)

    def release(self) -> None:
        """Drop the lock (closing the file does it). The file stays: removing it would let a
        driver waiting on the old inode and a new one on a new file both 'hold' it."""
        if self.handle is not None:
            self.handle.close()
            self.handle = None


def acquire_campaign_lock(workdir: Path, command: list[str] | None = None) -> CampaignLock:
    """Lock ``workdir`` for this process or raise :class:`CampaignLocked` at once.

    Nothing in the folder is changed when it is locked by another driver (the lock file is
    opened without truncation and written only once the lock is ours)."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / LOCK_FILE
    handle = open(path, "a+")  # noqa: SIM115 - kept open for the driver's life
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = _describe(handle.read())
        handle.close()
        raise CampaignLocked(
            f"campaign folder {workdir} is in use by {holder} (lock file {path}); wait for "
            f"that run to end or stop it, then run the same command again") from None
    except OSError as exc:
        if exc.errno not in (errno.ENOSYS, errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL):
            handle.close()
            raise
        return CampaignLock(path, handle, warning=(
            f"cannot lock {path} ({os.strerror(exc.errno)}: on Lustre mount with -o flock); "
            "running without a lock: make sure no other driver uses this folder"))
    handle.seek(0)
    handle.truncate()
    handle.write(json.dumps({
        "pid": os.getpid(), "host": socket.gethostname(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": command if command is not None else sys.argv}) + "\n")
    handle.flush()
    return CampaignLock(path, handle)


def _describe(content: str) -> str:
    """'pid 123 on host n1 (started ..., command ...)' from the lock file's content."""
    try:
        info = json.loads(content)
        text = f"pid {info['pid']} on host {info['host']}"
    except (ValueError, KeyError, TypeError):
        return "another process (its lock file names none yet)"
    command = " ".join(str(a) for a in info.get("command", []))
    return f"{text} (started {info.get('started', '?')}: {command})"
