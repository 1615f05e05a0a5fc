"""Exclusive claim files, so that processes sharing one results directory never run the same configuration twice.

Before a run, the main process creates `<run_id>.claim` next to the result. Creation is exclusive: the content is
written to a private temporary file and hard-linked to the claim name, which fails when the claim exists (the
link makes content and creation one atomic step; filesystems without hard links fall back to O_CREAT|O_EXCL).
The claim holds the owner's pid, host, boot id, process start time and a random token; a daemon thread touches its
mtime every `heartbeat_s` seconds. A claim is *stale*, and is taken over, when its owner is gone:

- same host (and same boot): the pid is not alive, or it now belongs to another process (start time differs);
- another host, or a claim that cannot be read: its mtime (the heartbeat) is older than `stale_after_s`.

Taking over renames the stale claim to a unique name first, so of several processes that judged it stale only one
removes it; a process that finds it moved a fresh claim instead puts it back. The claim is removed when the run
finishes (or fails), and a SIGKILLed process leaves one behind that the next run detects as stale.
"""
from __future__ import annotations

import errno
import json
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

HEARTBEAT_S = 30.0  # touch held claims this often
STALE_AFTER_S = 600.0  # another host's claim without a heartbeat for this long belongs to a dead process


def claim_path(result_path: str | Path) -> Path:
    """`results/<task>/<run_id>.claim` for `results/<task>/<run_id>.json`."""
    return Path(result_path).with_suffix(".claim")


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def boot_id() -> str:
    return _read(Path("/proc/sys/kernel/random/boot_id"))


def process_start(pid: int) -> Optional[str]:
    """Start time of `pid` in clock ticks since boot (Linux), or None where /proc cannot tell."""
    stat = _read(Path(f"/proc/{pid}/stat"))
    if not stat:
        return None
    fields = stat.rsplit(")", 1)[-1].split()  # the command name may hold spaces and ')'
    return fields[19] if len(fields) > 19 else None  # field 22 of stat(5), counted after the name


def pid_alive(pid: int, start: Optional[str] = None) -> bool:
    """Whether `pid` runs on this host and, when `start` is known, is still the same process (no pid reuse)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by another user
    if start is not None:
        now = process_start(pid)
        if now is not None and now != start:
            return False
    return True


@dataclass
class ClaimInfo:
    """What a claim file says about its owner, plus its heartbeat age."""

    path: Path
    raw: bytes
    pid: Optional[int]
    host: Optional[str]
    boot: Optional[str]
    proc_start: Optional[str]
    started: Optional[str]
    token: Optional[str]
    age_s: float

    def describe(self) -> str:
        who = f"pid {self.pid} on {self.host}" if self.pid is not None else "an unknown process"
        return f"{who}, started {self.started or '?'}, last heartbeat {self.age_s:.0f} s ago"


def read_claim(path: str | Path) -> Optional[ClaimInfo]:
    """The claim at `path`, or None when there is none. An unreadable claim has pid None (judged by its age)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        age = max(0.0, time.time() - path.stat().st_mtime)
    except FileNotFoundError:
        return None
    except OSError:
        raw, age = b"", 0.0
    try:
        d = json.loads(raw)
        if not isinstance(d, dict):
            raise ValueError
        pid = int(d["pid"])
    except (ValueError, KeyError, TypeError):
        return ClaimInfo(path, raw, None, None, None, None, None, None, age)
    return ClaimInfo(path, raw, pid, d.get("host"), d.get("boot_id"), d.get("proc_start"), d.get("started"),
                     d.get("token"), age)


def stale_reason(info: ClaimInfo, stale_after_s: float = STALE_AFTER_S) -> Optional[str]:
    """Why the claim's owner is gone, or None when it may still be running."""
    here = socket.gethostname()
    if info.pid is not None and info.host == here and (not info.boot or info.boot == boot_id()):
        return None if pid_alive(info.pid, info.proc_start) else f"process {info.pid} on this host is gone"
    if info.age_s > stale_after_s:
        return f"no heartbeat for {info.age_s:.0f} s (> {stale_after_s:.0f} s)"
    if info.pid is not None and info.host == here:
        return "this host was rebooted since"
    return None


@dataclass
class Outcome:
    acquired: bool
    holder: Optional[ClaimInfo] = None  # the live owner, when not acquired
    took_over: Optional[str] = None  # the stale claim that was replaced, described


class Claims:
    """The claims this process holds, kept alive by one heartbeat thread."""

    def __init__(self, stale_after_s: float = STALE_AFTER_S, heartbeat_s: float = HEARTBEAT_S) -> None:
        self.stale_after_s = float(stale_after_s)
        self.heartbeat_s = float(heartbeat_s)
        self.held: dict[Path, str] = {}  # claim path -> our token
        self.lost: set[Path] = set()  # claims another process took from us (we were presumed dead)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    # ---- acquire / release -----------------------------------------------------------------------------------
    def acquire(self, result_path: str | Path) -> Outcome:
        path = claim_path(result_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        took_over = None
        for _ in range(8):  # each retry follows a claim that vanished or was replaced meanwhile
            token = uuid.uuid4().hex
            if self._create(path, token):
                with self._lock:
                    self.held[path] = token
                self._start_heartbeat()
                return Outcome(True, took_over=took_over)
            info = read_claim(path)
            if info is None:
                continue
            why = stale_reason(info, self.stale_after_s)
            if why is None:
                return Outcome(False, holder=info)
            if self._remove_stale(path, info):
                took_over = f"{info.describe()}: {why}"
        info = read_claim(path)
        return Outcome(False, holder=info)

    def release(self, result_path: str | Path) -> None:
        """Remove our claim (only if it is still ours)."""
        path = claim_path(result_path)
        with self._lock:
            token = self.held.pop(path, None)
            self.lost.discard(path)
        if token is not None and self._owns(path, token):
            try:
                path.unlink()
            except FileNotFoundError:
                pass

    def release_all(self) -> None:
        for path in list(self.held):
            self.release(path.with_suffix(".json"))
        self._stop.set()

    def still_held(self, result_path: str | Path) -> bool:
        path = claim_path(result_path)
        token = self.held.get(path)
        return token is not None and self._owns(path, token)

    # ---- internals -------------------------------------------------------------------------------------------
    def _content(self, token: str) -> bytes:
        pid = os.getpid()
        return json.dumps({
            "pid": pid, "host": socket.gethostname(), "boot_id": boot_id(), "proc_start": process_start(pid),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "token": token,
        }).encode()

    def _create(self, path: Path, token: str) -> bool:
        """Create the claim with its content in one atomic step; False when it already exists."""
        data = self._content(token)
        tmp = path.with_name(f".{path.name}.{token}.tmp")
        try:
            fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            try:
                os.link(tmp, path)
                return True
            except (FileExistsError, FileNotFoundError):  # taken, or our temp file was swept as a leftover
                return False
            except OSError as exc:
                if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
                    raise
            # no hard links here: plain exclusive create (a claim killed mid-write is judged by its age)
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                return False
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            return True
        finally:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass

    def _remove_stale(self, path: Path, info: ClaimInfo) -> bool:
        """Move the stale claim out of the way; False if what was moved is not the claim judged stale."""
        tomb = path.with_name(f".{path.name}.{uuid.uuid4().hex}.stale")
        try:
            os.rename(path, tomb)
        except FileNotFoundError:
            return False
        try:
            moved = tomb.read_bytes()
        except OSError:
            moved = b""
        if moved != info.raw:  # someone replaced the stale claim before our rename: give theirs back
            try:
                os.link(tomb, path)
            except (FileExistsError, FileNotFoundError):
                pass
        try:
            os.unlink(tomb)
        except FileNotFoundError:
            pass
        return moved == info.raw

    @staticmethod
    def _owns(path: Path, token: str) -> bool:
        info = read_claim(path)
        return info is not None and info.token == token

    def _start_heartbeat(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._beat, name="balancebench-claims", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            with self._lock:
                items = list(self.held.items())
            for path, token in items:
                if not self._owns(path, token):
                    self.lost.add(path)
                    continue
                try:
                    os.utime(path)
                except OSError:
                    pass
