"""A launcher that trains nothing: runs "finish" after a simulated duration, with metrics from a known mixing law.

For the orchestration tests and benchmark (`launcher: inprocess`): it exercises everything around training —
submission, batched status polling, preemption and resubmission, result pulling, fitting — in seconds, with a
ground truth to check the fit against. All state lives in the store like the local launcher's (status.json per
run, a `finish_at` time in its `extra`), so a new process, or a flow re-run after a crash, sees the same runs.

- `status()` is one listing of `runs/` plus one batched read of every status.json; runs whose time has come are
  finished there (result.json, then status.json), so runs complete "over time" as the group is polled.
- Every submission (first or re-) appends one object under `launcher/inprocess/submissions/`, which is how tests
  prove that no run was submitted twice.
- Faults are seeded per run name: a fraction is preempted or fails on its first attempt, `always_fail` never
  succeeds.
- Training progress is simulated like a real run reports it (`RunStatus.progress`): `steps` steps spread over the
  run's duration, the train loss falling to the law's value; computed on each `status()` (not written: a real
  run's reports cost writes, a simulation needs none) and recorded with the final status.
"""

from __future__ import annotations

import hashlib
import math
import time
import uuid
from collections import Counter, defaultdict
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from olmix_core.config import ExperimentConfig
from olmix_core.launch.base import RETRY_STATES, Launcher
from olmix_core.names import parse_run_name
from olmix_core.runspec import RunProgress, RunSpec, RunState, RunStatus, now_iso, read_statuses, write_status
from olmix_core.store import SwarmStore

SUBMISSIONS_KEY = "launcher/inprocess/submissions"
TRAIN_LOSS_METRIC = "train/CE loss"

# per group id, for benchmarks: "status" (status() calls), "reads" / "writes" (storage requests), and
# "max_status_reads" (the most storage reads one status() call made)
CALLS: dict[str, Counter[str]] = defaultdict(Counter)


class InProcessOptions(BaseModel):
    """How simulated runs behave (the flow's `launcher_options` for `launcher: inprocess`)."""

    model_config = ConfigDict(extra="forbid")

    run_s: float = Field(1.0, ge=0.0)  # mean simulated training time per run
    jitter: float = Field(0.5, ge=0.0, le=1.0)  # durations spread uniformly over run_s × [1 - jitter, 1 + jitter]
    preempt_fraction: float = Field(0.0, ge=0.0, le=1.0)  # runs preempted on their first attempt
    fail_fraction: float = Field(0.0, ge=0.0, le=1.0)  # runs failing on their first attempt
    always_fail: list[str] = []  # run names that fail on every attempt
    noise: float = Field(0.0, ge=0.0)  # std of Gaussian noise added to each metric
    seed: int = 0  # of the mixing law, the durations and the faults
    steps: int = Field(100, ge=1)  # simulated training steps per run


def _unit(*parts: Any) -> float:
    """A deterministic number in [0, 1) from its parts (stable across processes, unlike hash())."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def law_labels(config: ExperimentConfig) -> list[str]:
    """The eval labels a simulated run reports: the config's eval sources, or one `target`."""
    return sorted(config.eval_sources) or ["target"]


def law_metrics(config: ExperimentConfig, weights: dict[str, float], seed: int = 0) -> dict[str, float]:
    """The known law: per eval label j, `CE_j(w) = c_j + exp(b_j + Σ_i t_ji w_i)` with `t_ji < 0` (a data mixing law,
    so a log-linear fit recovers it exactly), plus a train loss that is their mean. Coefficients are seeded by the
    label and leaf names, so every process agrees."""
    out: dict[str, float] = {}
    for label in law_labels(config):
        c = 1.0 + _unit(seed, label, "c")
        b = 0.5 + _unit(seed, label, "b")
        x = sum(-3.0 * _unit(seed, label, leaf, "t") * float(weights.get(leaf, 0.0)) for leaf in config.leaf_names())
        out[f"eval/lm/{label}/CE loss"] = c + math.exp(b + x)
    out[TRAIN_LOSS_METRIC] = sum(out.values()) / len(out)
    return out


class InProcessLauncher(Launcher):
    """Simulated runs kept in the store (see the module doc)."""

    kind = "inprocess"

    def __init__(self, config: ExperimentConfig, swarm: SwarmStore, options: InProcessOptions | dict | None = None) -> None:
        super().__init__(config, swarm)
        self.options = options if isinstance(options, InProcessOptions) else InProcessOptions.model_validate(options or {})
        self._mixtures: dict[str, tuple[dict[str, float], str]] = {}  # run -> (weights, purpose), read lazily

    # interface -------------------------------------------------------------------------------
    def submit(self, specs: list[RunSpec]) -> dict[str, RunStatus]:
        """Start runs that have no status yet (or `pending`); all others are left as they are."""
        current = self._read()
        for spec in specs:
            st = current.get(spec.run_name)
            if st is None or st.state == RunState.pending:
                current[spec.run_name] = self._start(spec.run_name, attempts=(st.attempts if st else 0) + 1)
        return {s.run_name: current[s.run_name] for s in specs}

    def resubmit(self, specs: list[RunSpec]) -> dict[str, RunStatus]:
        """Start again runs that failed, were preempted or canceled (one more attempt); new runs are submitted."""
        current = self._read()
        for spec in specs:
            st = current.get(spec.run_name)
            if st is not None and st.state in RETRY_STATES:
                current[spec.run_name] = self._start(spec.run_name, attempts=st.attempts + 1)
        return self.submit(specs)

    def status(self) -> dict[str, RunStatus]:
        """Every run of the group; runs whose simulated time is up are finished (and recorded) here."""
        stats = CALLS[self.swarm.group_id]
        stats["status"] += 1
        reads_before = stats["reads"]
        current = self._read()
        now = time.time()
        for name, st in current.items():
            if st.state.active and float(st.extra.get("finish_at", math.inf)) <= now:
                current[name] = self._finish(st)
            elif st.state == RunState.running and "finish_at" in st.extra:
                current[name] = st.model_copy(update={"progress": self._progress(st, now)})
        stats["max_status_reads"] = max(stats["max_status_reads"], stats["reads"] - reads_before)
        return current

    @property
    def poll_s(self) -> float:  # type: ignore[override]
        """Often enough for the simulated durations."""
        return min(1.0, max(0.05, self.options.run_s / 10))

    def cancel(self) -> dict[str, RunStatus]:
        current = self._read()
        for name, st in current.items():
            if not st.state.finished:
                current[name] = self._write(st.model_copy(update={"state": RunState.canceled, "reason": "canceled"}))
        return current

    # simulation ------------------------------------------------------------------------------
    def outcome(self, run: str, attempt: int) -> tuple[RunState, str | None]:
        """How attempt `attempt` of `run` ends (seeded)."""
        o = self.options
        if run in o.always_fail:
            return RunState.failed, "simulated failure (always_fail)"
        if attempt == 1:
            u = _unit(o.seed, run, "fault")
            if u < o.preempt_fraction:
                return RunState.preempted, "simulated preemption"
            if u < o.preempt_fraction + o.fail_fraction:
                return RunState.failed, "simulated failure"
        return RunState.succeeded, None

    def duration(self, run: str, attempt: int) -> float:
        o = self.options
        return o.run_s * (1.0 + o.jitter * (2.0 * _unit(o.seed, run, attempt, "duration") - 1.0))

    def _start(self, run: str, attempts: int) -> RunStatus:
        now = time.time()
        st = RunStatus(
            run_name=run, state=RunState.running, attempts=attempts, launcher=self.kind, job_id=f"inprocess-{run}-a{attempts}",
            extra={"submitted_at": now, "finish_at": now + self.duration(run, attempts)},
        )
        self.swarm.store.write_json(
            self.swarm.key(SUBMISSIONS_KEY, f"{run}.a{attempts}.{uuid.uuid4().hex[:8]}.json"),
            {"run": run, "attempt": attempts, "time": now},
        )
        self._count("writes", 1)
        return self._write(st)

    def _finish(self, st: RunStatus) -> RunStatus:
        state, reason = self.outcome(st.run_name, st.attempts)
        if state == RunState.succeeded:
            weights, purpose = self._mixture(st.run_name)
            metrics = law_metrics(self.config, weights, self.options.seed)
            if self.options.noise:
                metrics = {k: v + self.options.noise * _gauss(self.options.seed, st.run_name, k) for k, v in metrics.items()}
            _, _, variant = parse_run_name(st.run_name)
            self.swarm.store.write_json(self.swarm.run_key(st.run_name, "result.json"), {
                "run": st.run_name, "group_id": self.swarm.group_id, "variant": variant, "state": "succeeded",
                "metrics": metrics, "mixture": weights, "purpose": purpose, "finished": now_iso(),
                "wall_time_s": round(float(st.extra["finish_at"]) - float(st.extra["submitted_at"]), 3),
            })
            self._count("writes", 1)
        progress = self._progress(st, float(st.extra["finish_at"])) if state == RunState.succeeded else self._progress(st, time.time())
        return self._write(st.model_copy(update={"state": state, "reason": reason, "progress": progress}))

    def _progress(self, st: RunStatus, at: float) -> RunProgress:
        """Where simulated training is at time `at`: steps in proportion to the time spent, the loss decaying from
        3 above the law's train loss to it."""
        start, end = float(st.extra["submitted_at"]), float(st.extra["finish_at"])
        fraction = min(1.0, max(0.0, (at - start) / (end - start))) if end > start else 1.0
        step = int(self.options.steps * fraction)
        final = law_metrics(self.config, self._mixture(st.run_name)[0], self.options.seed)[TRAIN_LOSS_METRIC]
        return RunProgress(step=step, total_steps=self.options.steps, train_loss=round(final + 3.0 * math.exp(-4.0 * fraction), 4),
                           elapsed_s=round(max(0.0, min(at, end) - start), 3))

    def _mixture(self, run: str) -> tuple[dict[str, float], str]:
        """A run's weights and purpose from its spec; all specs are read in one batch, once per new run seen."""
        if run not in self._mixtures:
            specs = self.swarm.read_run_files("spec.json")
            self._count("reads", 2)
            for name, spec in specs.items():
                self._mixtures[name] = ({m["leaf"]: float(m["weight"]) for m in spec["mixture"]}, spec.get("purpose", "swarm"))
        return self._mixtures[run]

    # store -------------------------------------------------------------------------------------
    def _read(self) -> dict[str, RunStatus]:
        """Statuses of every run with a folder under runs/ (one listing + one batched read)."""
        stored = read_statuses(self.swarm)
        names = set(self.swarm.run_names()) | set(stored)
        self._count("reads", 3)  # listing + batched read of status.json, listing of runs/
        return {name: stored.get(name) or RunStatus(run_name=name, state=RunState.pending, launcher=self.kind) for name in sorted(names)}

    def _write(self, st: RunStatus) -> RunStatus:
        self._count("writes", 1)
        return write_status(self.swarm, st)

    def _count(self, what: str, requests: int) -> None:
        CALLS[self.swarm.group_id][what] += requests


def _gauss(*parts: Any) -> float:
    """A seeded standard normal number (Box-Muller on two deterministic uniforms)."""
    u1 = max(_unit(*parts, "u1"), 1e-12)
    u2 = _unit(*parts, "u2")
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


def submission_log(swarm: SwarmStore) -> list[dict[str, Any]]:
    """Every submission the in-process launcher made for this group, oldest first."""
    entries = swarm.store.list(swarm.key(SUBMISSIONS_KEY))
    records = [swarm.store.read_json(swarm.key(SUBMISSIONS_KEY, e)) for e in entries]
    return sorted(records, key=lambda r: r["time"])
