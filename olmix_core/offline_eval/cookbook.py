"""The `cookbook` backend: run the swarm's emitted `olmix-{group}.sh` (olmo-cookbook-eval) for the runs to evaluate.

The script evaluates every variant it lists; runs whose results are already in the dashboard are left out by
emitting the same script for the remaining runs only. Its output says, per variant, whether it was evaluated,
skipped for lack of a checkpoint, or failed; that becomes the per-run report.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from typing import Any

from olmix_core.config import ExperimentConfig
from olmix_core.errors import ConfigError, OlmixError
from olmix_core.store import SwarmStore, open_fs

COOKBOOK_CLI = "olmo-cookbook-eval"
_LINE = re.compile(r"^variant \d+ \((?P<run>[^)]+)\): (?P<what>.*)$")


class CookbookError(OlmixError):
    """olmo-cookbook-eval is not installed, or the eval script could not be run."""


def evaluated_runs(prefix: str, dashboard: str, group_id: str) -> tuple[dict[str, int], list[str]]:
    """({run: highest evaluated step (-1: unknown)} of runs with any metrics-all.jsonl in the dashboard, warnings)."""
    from olmix_core.results.dashboard import METRICS_FILE, match_eval_run

    fs, root = open_fs(f"{prefix.rstrip('/')}/{dashboard}")
    root = root.rstrip("/")
    if hasattr(fs, "invalidate_cache"):
        fs.invalidate_cache(root)
    try:
        paths = fs.find(root)
    except FileNotFoundError:
        return {}, []
    except Exception as e:  # noqa: BLE001 - no credentials for the cluster's bucket: evaluate everything, and say why
        return {}, [f"could not list {prefix}/{dashboard} ({type(e).__name__}: {e}); evaluating every finished run"]
    out: dict[str, int] = {}
    for p in paths:
        if not p.endswith("/" + METRICS_FILE):
            continue
        matched = match_eval_run(p[len(root) + 1 :].split("/", 1)[0], group_id)
        if matched:
            run, step = matched
            out[run] = max(step, out.get(run, -2))
    return out, []


def _script_for(config: ExperimentConfig, swarm: SwarmStore, pending: list[str], all_runs: list[str], scratch: str) -> str:
    """The emitted script when it covers exactly the runs to evaluate, else the same script for `pending` only."""
    from olmix_core.evals import write_eval_script

    info = swarm.metadata().eval_script
    emitted = info.path if info else None
    if emitted and os.path.isfile(emitted) and sorted(pending) == sorted(all_runs):
        return emitted
    return write_eval_script(config, swarm.group_id, pending, None, scratch)


def run_cookbook(
    config: ExperimentConfig, swarm: SwarmStore, runs: list[str], all_runs: list[str], dry_run: bool = False, timeout_s: float | None = None
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Run the eval script for `runs`; ({run: {state, detail}}, {script, returncode, output_tail})."""
    if shutil.which(COOKBOOK_CLI) is None:
        raise CookbookError(f"{COOKBOOK_CLI} is not on PATH: install olmo-cookbook (pip install 'olmo-cookbook[eval]'), or use --backend local")
    if not runs:
        return {}, {"script": None, "returncode": 0, "output_tail": ""}
    with tempfile.TemporaryDirectory(prefix="olmix-cookbook-") as scratch:
        script = _script_for(config, swarm, runs, all_runs, scratch)
        try:
            proc = subprocess.run(
                ["bash", script, *(["--dry-run"] if dry_run else [])], capture_output=True, text=True, timeout=timeout_s, check=False
            )
        except subprocess.TimeoutExpired:
            raise CookbookError(f"{script}: still running after {timeout_s} s; stopped") from None
    out = f"{proc.stdout}\n{proc.stderr}"
    states: dict[str, dict[str, Any]] = {}
    for line in out.splitlines():
        m = _LINE.match(line.strip())
        if not m or m["run"] not in runs:
            continue
        what = m["what"]
        if what.startswith("evaluating"):
            states.setdefault(m["run"], {"state": "submitted" if not dry_run else "dry-run", "detail": what})
        elif "failed" in what or "skipped" in what:
            states[m["run"]] = {"state": "failed", "error": what}
    for run in runs:
        states.setdefault(run, {"state": "failed", "error": f"not reported by the eval script (exit code {proc.returncode})"})
    return states, {"script": script, "returncode": proc.returncode, "output_tail": out[-4000:]}


def check_cookbook_dashboard(dashboard: str, default: str) -> None:
    if dashboard != default:
        raise ConfigError(f"dashboard: the eval script writes to dashboard {default!r}; other names need backend local or beaker",
                          fields=("dashboard", "backend"))
