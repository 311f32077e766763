"""The local launcher: `olmix train --run-spec URL` subprocesses on this machine, at most N at a time.

Design. `submit` only writes `state: submitted` into each run's status.json and makes sure one detached
*supervisor* process (`python -m olmix_core.launch.local ...`, its own session, so it outlives the caller) is
running for the group. The supervisor is the queue: it starts submitted runs oldest first while fewer than
`max_concurrency` run, reaps them, and writes their final status (with exit code, wall time and peak memory).
All state lives in the store, so `status` and `cancel` work from any process and after a restart:

- `status` reads every status.json in one bulk listing; a `running` run whose process is gone (on this host) is
  `succeeded` when it left a result.json and `failed` ("process died") otherwise.
- `cancel` writes a cancel marker (the supervisor then starts nothing submitted before it), kills the runs'
  process groups and marks them `canceled`.
- One supervisor per group, guarded by an flock on a local lock file; a supervisor with an empty queue releases the
  lock, looks once more, and exits only if nothing was queued meanwhile, so no submission is ever stranded.

Each run gets OMP_NUM_THREADS / MKL_NUM_THREADS = training.threads_per_run and its output in runs/{run}/train.log
(appended per attempt). Nothing is forced onto the CPU: the trainer picks the device (training.device auto).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from olmix_core.config import ExperimentConfig
from olmix_core.errors import ArtifactCorrupt, ArtifactMissing, LaunchError, OlmixError
from olmix_core.launch.base import RETRY_STATES, Launcher
from olmix_core.launch.wait import poll_group
from olmix_core.runspec import RunSpec, RunState, RunStatus, now_iso, parse_status, read_statuses, write_status
from olmix_core.store import ArtifactStore, SwarmStore

TRAIN_COMMAND = [sys.executable, "-m", "olmix_core.commands.train"]
CANCEL_KEY = "launcher/local-cancel.json"
SUPERVISOR_LOG_KEY = "launcher/local-supervisor.log"
KILL_GRACE_S = 5.0
STORE_RETRY_S = (0.5, 30.0)  # the supervisor's first and longest wait between rounds while the store fails
DEFAULT_MAX_OUTAGE_S = 3600.0


def default_concurrency(config: ExperimentConfig) -> int:
    """config.max_concurrency, else usable cores // threads per run (at least 1)."""
    if config.max_concurrency:
        return config.max_concurrency
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // max(1, config.training.threads_per_run))


class LocalLauncher(Launcher):
    """Runs a group's specs as local subprocesses through a detached per-group supervisor (see the module doc).

    `train_command` is the argv prefix before `--run-spec URL` (tests pass a stand-in trainer); it is fixed for the
    lifetime of a supervisor."""

    kind = "local"

    def __init__(
        self,
        config: ExperimentConfig,
        swarm: SwarmStore,
        train_command: list[str] | None = None,
        max_concurrency: int | None = None,
        poll_s: float = 0.5,
    ) -> None:
        super().__init__(config, swarm)
        self.train_command = list(train_command or TRAIN_COMMAND)
        self.max_concurrency = max_concurrency or default_concurrency(config)
        self.poll_s = poll_s
        self.host = socket.gethostname()
        self.supervisor: subprocess.Popen | None = None

    # interface -------------------------------------------------------------------------------
    def submit(self, specs: list[RunSpec]) -> dict[str, RunStatus]:
        """Queue runs with no status yet (or `pending`); runs already queued, running or finished are left alone."""
        current = self.status()
        queued = False
        try:
            for spec in specs:
                st = current.get(spec.run_name)
                if st is None or st.state == RunState.pending:
                    current[spec.run_name] = self._queue(spec.run_name, attempts=(st.attempts if st else 0) + 1)
                    queued = True
        finally:  # runs queued before a store error still get their supervisor
            if queued or any(current[s.run_name].state == RunState.submitted for s in specs if s.run_name in current):
                self.ensure_supervisor()
        return {s.run_name: current[s.run_name] for s in specs}

    def resubmit(self, specs: list[RunSpec]) -> dict[str, RunStatus]:
        """Queue again runs that failed, were preempted or canceled, counting an attempt; new runs are submitted."""
        current = self.status()
        for spec in specs:
            st = current.get(spec.run_name)
            if st is not None and st.state in RETRY_STATES:
                current[spec.run_name] = self._queue(spec.run_name, attempts=st.attempts + 1)
        return self.submit(specs)

    def status(self) -> dict[str, RunStatus]:
        """Every run of the group (one listing + one bulk read); dead local processes are resolved and recorded."""
        stored = read_statuses(self.swarm)
        names = set(self.swarm.run_names()) | set(stored)
        out: dict[str, RunStatus] = {}
        dead: list[str] = []
        for name in sorted(names):
            if name not in stored:
                out[name] = RunStatus(run_name=name, state=RunState.pending, launcher=self.kind)
                continue
            st = stored[name]
            out[name] = st
            if st.state == RunState.running and self._process_gone(st):
                dead.append(name)
        if dead:
            unreadable: dict[str, str] = {}
            results = self.swarm.read_run_files("result.json", unreadable)
            canceled_at = cancel_time(self.swarm)
            for name in dead:
                st = out[name]
                if name in unreadable:
                    out[name] = self._write(st, state=RunState.failed, reason=f"process died (pid {st.job_id}); {unreadable[name]}")
                elif name in results:
                    out[name] = self._write(st, state=RunState.succeeded, reason=None)
                elif 0 < canceled_at and _submitted_at(st) <= canceled_at:  # killed by a cancel, not yet reaped
                    out[name] = self._write(st, state=RunState.canceled, reason="canceled")
                else:
                    out[name] = self._write(st, state=RunState.failed, reason=f"process died (pid {st.job_id}) {_log_tail(self.swarm, name)}".strip())
        if any(s.state == RunState.submitted for s in out.values()) and not self.supervisor_alive():
            for name, st in out.items():
                if st.state == RunState.submitted:
                    out[name] = st.model_copy(update={"reason": "queued, but no supervisor is running: submit again to resume"})
        return out

    def cancel(self) -> dict[str, RunStatus]:
        """Stop the queue (cancel marker), kill running process groups (TERM, then KILL), mark unfinished runs canceled."""
        self.swarm.store.write_json(self.swarm.key(CANCEL_KEY), {"time": time.time(), "updated": now_iso()})
        current = self.status()
        killed: list[int] = []
        for name, st in current.items():
            if st.state == RunState.submitted:
                current[name] = self._write(st, state=RunState.canceled, reason="canceled before it started")
            elif st.state == RunState.running:
                current[name] = self._write(st, state=RunState.canceled, reason="canceled")
                pgid = _pgid(st)
                if pgid and st.extra.get("host", self.host) == self.host:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(pgid, signal.SIGTERM)
                        killed.append(pgid)
        deadline = time.monotonic() + KILL_GRACE_S
        while killed and time.monotonic() < deadline:
            killed = [g for g in killed if _group_alive(g)]
            time.sleep(0.1)
        for pgid in killed:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
        return current

    # waiting ---------------------------------------------------------------------------------
    def wait(
        self,
        runs: list[str] | None = None,
        timeout_s: float | None = None,
        poll_s: float | None = None,
        on_change: Callable[[dict[str, RunStatus]], None] | None = None,
    ) -> dict[str, RunStatus]:
        """Block until every run (or every run in `runs`) is finished, resuming a queue whose supervisor died; nothing
        is resubmitted (the poll stage does that). `on_change` sees the statuses whenever a run's state changed."""
        last: dict[str, RunState] = {}

        def on_round(statuses: dict[str, RunStatus], unfinished: list[str]) -> None:
            states = {n: s.state for n, s in statuses.items()}
            if on_change is not None and states != last:
                on_change(statuses)
            last.clear()
            last.update(states)

        names = sorted(self.status()) if runs is None else runs
        return poll_group(self, names, 0, lambda _: [], poll_s or max(self.poll_s, 0.5), timeout_s, on_round).statuses

    def settled(self, st: RunStatus) -> bool:
        """A finished run whose exit the supervisor has recorded (the trainer marks success before it exits), or,
        with no supervisor left to record it, whose process is gone."""
        if "exit_code" in st.extra or st.state == RunState.canceled or not self._is_ours(st):
            return True
        return not self._supervisor_running() and self._process_gone(st)

    def heal(self, statuses: dict[str, RunStatus]) -> None:
        stuck = sorted(n for n, s in statuses.items() if s.state == RunState.pending)
        if stuck and not self._supervisor_running():
            raise LaunchError(f"runs never submitted (no status and no supervisor): {stuck}")
        if any(s.state == RunState.submitted for s in statuses.values()):
            self.ensure_supervisor()

    # supervisor ------------------------------------------------------------------------------
    def supervisor_alive(self) -> bool:
        """Whether a supervisor holds this group's lock on this host."""
        with _try_lock(self.lock_path()) as got:
            return not got

    def _supervisor_running(self) -> bool:
        """The one this launcher started (it may not hold the lock yet), or any holding the lock."""
        return (self.supervisor is not None and self.supervisor.poll() is None) or self.supervisor_alive()

    def lock_path(self) -> Path:
        return lock_path(self.swarm)

    def ensure_supervisor(self) -> None:
        """Start the group's supervisor unless one is running (it would pick the queued runs up itself)."""
        if self._supervisor_running():
            return
        argv = [
            sys.executable, "-m", "olmix_core.launch.local",
            "--storage-root", self.swarm.store.root_url,
            "--swarm-name", self.swarm.name,
            "--group-id", self.swarm.group_id,
            "--max-concurrency", str(self.max_concurrency),
            "--threads", str(self.config.training.threads_per_run),
            "--train-command", json.dumps(self.train_command),
            "--poll", str(self.poll_s),
        ]
        log = _local_log_path(self.swarm, SUPERVISOR_LOG_KEY)
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as f:
            self.supervisor = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT, start_new_session=True, close_fds=True
            )

    # helpers -----------------------------------------------------------------------------------
    def _queue(self, name: str, attempts: int) -> RunStatus:
        return write_status(self.swarm, RunStatus(
            run_name=name, state=RunState.submitted, attempts=attempts, launcher=self.kind,
            extra={"host": self.host, "submitted_at": time.time()},
        ))

    def _write(self, st: RunStatus, **update: Any) -> RunStatus:
        return write_status(self.swarm, st, **update)

    def _is_ours(self, st: RunStatus) -> bool:
        """A local run on this host with a pid: the only kind whose process this launcher can check."""
        return st.launcher in (None, self.kind) and st.extra.get("host", self.host) == self.host and (st.job_id or "").isdigit()

    def _process_gone(self, st: RunStatus) -> bool:
        return self._is_ours(st) and not pid_alive(int(st.job_id or 0), expect=st.run_name)


# process helpers --------------------------------------------------------------------------------
def pid_alive(pid: int, expect: str | None = None) -> bool:
    """A live, non-zombie process whose command line mentions `expect` (guards against a reused pid)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    proc = Path(f"/proc/{pid}")
    if not proc.exists():
        return True  # no procfs (macOS): trust kill(0)
    try:
        state = proc.joinpath("stat").read_text().rsplit(")", 1)[1].split()[0]
        cmdline = proc.joinpath("cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except (OSError, IndexError):
        return False
    if state in ("Z", "X"):
        return False
    return expect is None or expect in cmdline


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _pgid(st: RunStatus) -> int | None:
    value = st.extra.get("pgid") or st.job_id
    try:
        return int(value) if value else None
    except (TypeError, ValueError):
        return None


def lock_path(swarm: SwarmStore) -> Path:
    """A local file the group's supervisor holds an flock on (in the store when it is local, else in the temp dir)."""
    return _local_log_path(swarm, "launcher/local.lock")


def _local_log_path(swarm: SwarmStore, key: str) -> Path:
    if swarm.store.is_local:
        return Path(swarm.store.path(swarm.key(key)))
    base = Path(tempfile.gettempdir()) / "olmix-local-launcher" / f"{swarm.name}-{swarm.group_id}"
    return base / key.replace("/", "-")


@contextlib.contextmanager
def _try_lock(path: Path) -> Iterator[bool]:
    """Non-blocking exclusive flock on `path` for the duration of the block; yields whether it was acquired."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _log_tail(swarm: SwarmStore, run: str, lines: int = 3) -> str:
    """The last lines of a run's log, for a failure reason (empty when there is none)."""
    try:
        if swarm.store.is_local:
            path = Path(swarm.store.path(swarm.run_key(run, "train.log")))
            with open(path, "rb") as f:
                f.seek(max(0, path.stat().st_size - 4096))
                text = f.read().decode(errors="replace")
        else:
            text = swarm.store.read_text(swarm.run_key(run, "train.log"))[-4096:]
    except (OSError, ArtifactMissing):  # a missing log must not hide the failure itself
        return ""
    tail = [ln for ln in text.splitlines() if ln.strip()][-lines:]
    return ("| " + " | ".join(tail)) if tail else ""


# the supervisor process -------------------------------------------------------------------------
class _Child:
    def __init__(self, name: str, proc: subprocess.Popen, log: Any, log_path: Path, started: float, status: RunStatus) -> None:
        self.name, self.proc, self.log, self.log_path, self.started, self.status = name, proc, log, log_path, started, status


class Supervisor:
    """The queue of one group on this host (runs in `python -m olmix_core.launch.local`).

    Store errors never end it: a round that fails is retried after a backoff (0.5 s doubling to 30 s) while its
    processes keep running; a status it could not write, a reaped run it could not finish and a log it could not
    upload wait in memory and are written once the store answers. It exits only when it has seen (with a
    successful read) that nothing is queued, or after `OLMIX_SUPERVISOR_MAX_OUTAGE_S` (default 1 h) of failing
    store calls with no process left to watch."""

    def __init__(self, swarm: SwarmStore, max_concurrency: int, threads: int, train_command: list[str], poll_s: float) -> None:
        self.swarm = swarm
        self.max_concurrency = max_concurrency
        self.threads = threads
        self.train_command = train_command
        self.poll_s = poll_s if swarm.store.is_local else max(poll_s, 2.0)
        self.host = socket.gethostname()
        self.children: dict[str, _Child] = {}
        self.exited: dict[str, tuple[_Child, int, Any]] = {}  # reaped, final status not recorded yet
        self.unsynced: dict[str, RunStatus] = {}  # statuses to write once the store answers
        self.uploads: dict[str, Path] = {}  # logs to upload (object stores) once the store answers
        self.fault_since: float | None = None
        self.backoff = STORE_RETRY_S[0]
        self.max_outage_s = float(os.environ.get("OLMIX_SUPERVISOR_MAX_OUTAGE_S") or DEFAULT_MAX_OUTAGE_S)

    def run(self) -> int:
        path = lock_path(self.swarm)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if not _flock(fd):
                return 0  # another supervisor has the queue
            signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
            while True:
                ok = self.guarded(self.step)
                if not ok and not self.children and self.outage_s() > self.max_outage_s:
                    _log(f"store unreachable for {self.outage_s():.0f} s with no run left to watch: exiting; "
                         "queued runs resume with `olmix launch run --group-id`")
                    return 1
                if self.busy() or not ok:
                    time.sleep(self.poll_s if ok else self.wait_s())
                    continue
                # empty: release, look once more, and go on if something was queued meanwhile or the store cannot
                # say (then the queue keeps its supervisor)
                fcntl.flock(fd, fcntl.LOCK_UN)
                try:
                    more = bool(self.queued(self.statuses()))
                except (OlmixError, OSError) as e:
                    self.note_fault(e)
                    more = True
                if not more or not _flock(fd, retries=20):
                    return 0
        finally:
            os.close(fd)

    # store faults --------------------------------------------------------------------------------
    def guarded(self, fn: Callable[[], Any]) -> bool:
        """Run one round; a store (or stored-file) error is logged and counted as an outage instead of ending us."""
        try:
            fn()
        except (OlmixError, OSError) as e:
            self.note_fault(e)
            return False
        self._recovered()
        return True

    def note_fault(self, e: BaseException) -> None:
        if self.fault_since is None:
            self.fault_since = time.monotonic()
        _log(f"store error (retrying in {self.backoff:.1f} s; {len(self.children)} running): {' '.join(str(e).split())}")

    def _recovered(self) -> None:
        if self.fault_since is not None:
            _log(f"store reachable again after {self.outage_s():.1f} s")
        self.fault_since = None
        self.backoff = STORE_RETRY_S[0]

    def wait_s(self) -> float:
        wait, self.backoff = self.backoff, min(self.backoff * 2, STORE_RETRY_S[1])
        return wait

    def outage_s(self) -> float:
        return 0.0 if self.fault_since is None else time.monotonic() - self.fault_since

    def busy(self) -> bool:
        return bool(self.children or self.exited or self.unsynced or self.uploads)

    def settle(self) -> None:
        """Record what earlier rounds could not: final statuses of reaped runs, other statuses, log uploads."""
        for name, (child, code, usage) in list(self.exited.items()):
            self.finish(child, code, usage)
            del self.exited[name]
        for name, st in list(self.unsynced.items()):
            write_status(self.swarm, st)
            if self.unsynced.get(name) is st:
                del self.unsynced[name]
        for name, log_path in list(self.uploads.items()):
            self.swarm.store.upload(str(log_path), self.swarm.run_key(name, "train.log"))
            del self.uploads[name]

    # the queue -------------------------------------------------------------------------------------
    def statuses(self) -> dict[str, RunStatus]:
        return read_statuses(self.swarm)

    def queued(self, statuses: dict[str, RunStatus]) -> list[RunStatus]:
        """Submitted runs, oldest first; those submitted before a cancel are marked canceled instead."""
        cancel_at = cancel_time(self.swarm)
        out = []
        for name, st in statuses.items():
            if st.state != RunState.submitted or name in self.children or name in self.exited or name in self.unsynced:
                continue
            if _submitted_at(st) <= cancel_at:
                self._write(st, state=RunState.canceled, reason="canceled before it started")
                continue
            out.append(st)
        return sorted(out, key=lambda s: (_submitted_at(s), s.run_name))

    def step(self) -> None:
        """Reap finished runs, record what is pending, kill runs a cancel came after, and start queued runs into the
        free slots."""
        self.reap()
        self.settle()
        cancel_at = cancel_time(self.swarm)
        for child in self.children.values():
            if _submitted_at(child.status) <= cancel_at:
                sig = signal.SIGKILL if time.time() - cancel_at > KILL_GRACE_S else signal.SIGTERM
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(child.proc.pid, sig)
        if len(self.children) >= self.max_concurrency:
            return
        statuses = self.statuses()
        free = self.max_concurrency - len(self.children) - self.orphans(statuses)
        for st in self.queued(statuses)[: max(free, 0)]:
            self.start(st)

    def orphans(self, statuses: dict[str, RunStatus]) -> int:
        """Runs still going on this host from an earlier supervisor: they use cores too."""
        return sum(
            1
            for name, st in statuses.items()
            if name not in self.children and st.state == RunState.running and st.extra.get("host") == self.host
            and (st.job_id or "").isdigit() and pid_alive(int(st.job_id or 0), expect=name)
        )

    def start(self, st: RunStatus) -> None:
        name = st.run_name
        if _submitted_at(st) <= cancel_time(self.swarm):
            self._write(st, state=RunState.canceled, reason="canceled before it started")
            return
        argv = [*self.train_command, "--run-spec", self.swarm.url("runs", name, "spec.json")]
        env = {**os.environ, "OMP_NUM_THREADS": str(self.threads), "MKL_NUM_THREADS": str(self.threads)}
        log_path = _local_log_path(self.swarm, f"runs/{name}/train.log")
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(log_path, "ab")
        log.write(f"=== olmix local launcher: attempt {st.attempts}, {now_iso()}, host {self.host}\n".encode())
        log.flush()
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        except OSError as e:
            log.close()
            self._write(st, state=RunState.failed, reason=f"could not start {argv[0]}: {e}")
            return
        running = st.model_copy(update={
            "state": RunState.running, "job_id": str(proc.pid), "reason": None, "launcher": "local",
            "extra": {**st.extra, "host": self.host, "pgid": proc.pid, "started_at": time.time()},
        })
        self.children[name] = _Child(name, proc, log, log_path, time.monotonic(), running)
        self._write(running)

    def reap(self) -> None:
        """Collect exited processes (no store call: their final status is recorded by `settle`)."""
        for name, child in list(self.children.items()):
            try:
                pid, wstatus, usage = os.wait4(child.proc.pid, os.WNOHANG)
            except ChildProcessError:
                pid, wstatus, usage = child.proc.pid, 0, None
            if pid == 0:
                continue
            code = os.waitstatus_to_exitcode(wstatus)
            child.proc.returncode = code
            child.log.close()
            del self.children[name]
            self.exited[name] = (child, code, usage)
            if not self.swarm.store.is_local:
                self.uploads[name] = child.log_path

    def finish(self, child: _Child, code: int, usage: Any) -> None:
        """Final status: canceled if a cancel came after its submission, succeeded if it exited 0 with a result,
        else the trainer's own failure reason or the exit code and the log's last lines. Raises on a store error
        before anything is written (the run stays in `exited` and is finished on a later round)."""
        with contextlib.suppress(OlmixError, OSError):  # the log goes up with the final status, or later (settle)
            if child.name in self.uploads:
                self.swarm.store.upload(str(child.log_path), self.swarm.run_key(child.name, "train.log"))
                del self.uploads[child.name]
        try:
            current = parse_status(self.swarm, child.name, self.swarm.store.read_json_or(
                self.swarm.run_key(child.name, "status.json"), child.status.model_dump(mode="json")))
        except ArtifactCorrupt:
            current = child.status  # a truncated status.json is replaced by the final one below
        extra = {
            **current.extra, **child.status.extra,
            "exit_code": code, "wall_s": round(time.monotonic() - child.started, 2), "finished_at": time.time(),
        }
        if usage is not None:
            extra["max_rss_mb"] = round(usage.ru_maxrss / (1024 if sys.platform != "darwin" else 1024 * 1024), 1)
        has_result = self.swarm.store.exists(self.swarm.run_key(child.name, "result.json"))
        if code == 0 and has_result:
            state, reason = RunState.succeeded, None
        elif _submitted_at(child.status) <= cancel_time(self.swarm) or current.state == RunState.canceled:
            state, reason = RunState.canceled, current.reason or "canceled"
        elif current.state == RunState.failed and current.reason and not current.reason.startswith("process died"):
            state, reason = RunState.failed, current.reason
        else:
            what = f"exit code {code}" if code >= 0 else f"killed by signal {-code}"
            missing = " without a result.json" if code == 0 else ""
            state, reason = RunState.failed, f"{what}{missing} {_log_tail(self.swarm, child.name)}".strip()
        final = child.status.model_copy(update={
            "state": state, "reason": reason, "extra": extra,
            "wandb_url": current.wandb_url or child.status.wandb_url,
            "progress": current.progress or child.status.progress,  # what the run reported as it trained
        })
        self._write(final)

    def _write(self, st: RunStatus, **update: Any) -> RunStatus:
        """Store a status; when the store fails, keep it to write on a later round (the queue goes on meanwhile)."""
        new = st.model_copy(update={**update, "updated": now_iso()})
        self.unsynced.pop(new.run_name, None)
        try:
            return write_status(self.swarm, new)
        except (OlmixError, OSError) as e:
            self.unsynced[new.run_name] = new
            _log(f"could not record {new.run_name} {new.state.value} (will retry): {' '.join(str(e).split())}")
            return new


def _log(message: str) -> None:
    print(f"{now_iso()} supervisor {os.getpid()}: {message}", flush=True)


def _flock(fd: int, retries: int = 0) -> bool:
    """Non-blocking flock; `retries` short waits ride out another process's momentary probe of the lock."""
    for attempt in range(retries + 1):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if attempt < retries:
                time.sleep(0.05)
    return False


def _submitted_at(st: RunStatus) -> float:
    return float(st.extra.get("submitted_at", 0.0))


def cancel_time(swarm: SwarmStore) -> float:
    """When the group was last canceled (0: never). A run submitted before it ends `canceled`, whoever resolves it
    (the supervisor reaping its child, or `status()` finding its process gone)."""
    try:
        marker = swarm.store.read_json_or(swarm.key(CANCEL_KEY), {})
    except ArtifactCorrupt:
        return time.time()  # a cancel was being recorded: start nothing queued before now
    return float(marker.get("time", 0.0)) if isinstance(marker, dict) else time.time()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="olmix local launcher: the queue of one swarm (started by `submit`).")
    parser.add_argument("--storage-root", required=True)
    parser.add_argument("--swarm-name", required=True)
    parser.add_argument("--group-id", required=True)
    parser.add_argument("--max-concurrency", type=int, required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--train-command", default=json.dumps(TRAIN_COMMAND), help="JSON list: argv before --run-spec URL")
    parser.add_argument("--poll", type=float, default=0.5)
    args = parser.parse_args(argv)
    swarm = SwarmStore(ArtifactStore(args.storage_root), args.swarm_name, args.group_id)
    print(f"{now_iso()} supervisor {os.getpid()} for {swarm.url()} (max {args.max_concurrency} at a time)", flush=True)
    code = Supervisor(swarm, args.max_concurrency, args.threads, json.loads(args.train_command), args.poll).run()
    print(f"{now_iso()} supervisor {os.getpid()} done", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
