"""`make demo` / `python -m deployments.demo`: one whole swarm through Prefect on this machine.

Runs configs/examples/local-tiny.yaml with the local launcher (the flow generates the demo data first; then 8 tiny
olmo-core proxies, fit, propose and a verify run), and prints the proposal, its verification and where to look.

With a Prefect server (PREFECT_API_URL, else 127.0.0.1:$PREFECT_SERVER_API_PORT when one answers there) the swarm
runs as a run of the `olmix/swarm` deployment: served by `make serve` when that is running, else by a serve process
the demo starts for its duration. A deployment run is what the UI can Retry (a retry resumes the swarm: same group
id, finished stages cached). Without a server it runs the flow in Prefect's ephemeral mode (no UI, no Retry; re-run
`olmix swarm --config ... --group-id G` or `make demo` to resume).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from deployments.serve import LOCAL_API, api_answers

ROOT = Path(__file__).resolve().parents[1]
DEPLOYMENT = "olmix/swarm"

CONFIG = "configs/examples/local-tiny.yaml"


def report(outcome: dict[str, Any], flow_run_url: str | None) -> str:
    """What the demo prints: the proposal next to the prior, predicted vs verified, where everything is."""
    lines = [f"swarm {outcome['name']} / group {outcome['group_id']}: {outcome.get('succeeded', '?')} of {outcome['runs']} runs succeeded"]
    if outcome.get("status") != "fitted" or not outcome.get("proposal"):
        lines.append(f"status: {outcome.get('status')}")
        return "\n".join(lines)
    lines += ["", f"proposed mixture (objective: {outcome['objective']}, lower is better):"]
    prior = outcome.get("prior") or {}
    for leaf, w in sorted(outcome["proposal"].items()):
        lines.append(f"  {leaf:<16} {w:7.4f}" + (f"   (prior {prior[leaf]:.4f})" if leaf in prior else ""))
    lines += ["", f"predicted objective at the proposal: {outcome['predicted_objective']:.4f}   (at the prior: {outcome['prior_objective']:.4f})"]
    v = outcome.get("verification")
    if v:
        lines += [
            f"verified objective (run {v['verify_run']}):   {v['actual_objective']:.4f}",
            f"swarm best / median:                   {v['swarm_best_objective']:.4f} / {v['swarm_median_objective']:.4f}",
            f"rank of the verified proposal:         {v['rank']} of {v['n_runs'] + 1}",
        ]
    fit_url = outcome["fit_url"]
    lines += [
        "",
        "where to look:",
        f"  store of this swarm:  {outcome['store']}",
        f"  fit, proposal, plots: {fit_url}/ (fit_report.json, proposed_weights.json, predicted_performance.json, verify.json, plots/)",
        f"  results tables:       {outcome['store']}/results/ (ratios.csv, metrics.csv, pull_report.json)",
        f"  offline eval script:  {outcome.get('eval_script')}",
    ]
    if flow_run_url:
        lines.append(f"  Prefect UI:           {flow_run_url} (artifacts: summary, runs, progress, mixtures, fit, proposal;")
        lines.append("                        Retry there re-runs this swarm from its cache while `make serve` runs)")
    else:
        lines.append("  Prefect UI:           start `make server` and run `make demo` again to follow (and retry) the flow run in the UI")
    return "\n".join(lines)


def deployment_ready(name: str = DEPLOYMENT) -> bool:
    """Whether a runner polls the deployment now (Prefect marks it READY while one does)."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            return str(getattr(client.read_deployment_by_name(name).status, "value", "")) == "READY"
        except ObjectNotFound:
            return False


def start_serving(log_path: Path, timeout_s: float = 120.0) -> subprocess.Popen:
    """`python -m deployments.serve --only swarm` for the demo's duration, once its runner polls."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([sys.executable, "-m", "deployments.serve", "--only", "swarm"], cwd=ROOT, env=os.environ.copy(),
                            stdout=open(log_path, "ab"), stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + timeout_s
    while not deployment_ready():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.terminate()
            raise RuntimeError(f"could not serve {DEPLOYMENT}: see {log_path}")
        time.sleep(1)
    return proc


def run_served(parameters: dict[str, Any], log_path: Path) -> Any:
    """One run of olmix/swarm, served by `make serve` if it runs, else by a serve process of our own; its final
    flow run (the flow's return value is persisted, so the demo reads it back)."""
    from prefect.deployments import run_deployment

    own = None if deployment_ready() else start_serving(log_path)
    try:
        return run_deployment(DEPLOYMENT, parameters=parameters, timeout=None)
    finally:
        if own is not None:
            own.terminate()
            own.wait(timeout=30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the local-tiny swarm through the olmix Prefect flow.")
    parser.add_argument("--config", default=CONFIG)
    parser.add_argument("--launcher", default="local", choices=["local", "inprocess"])
    parser.add_argument("--no-verify", action="store_true")
    parser.add_argument("--launcher-options", default=None, help="JSON options of the inprocess launcher (tests)")
    args = parser.parse_args(argv)
    # The ephemeral server's telemetry heartbeat races the flow for SQLite's lock and prints tracebacks.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

    import json

    from prefect.settings import PREFECT_API_URL, get_current_settings, temporary_settings

    from olmix_core.names import new_group_id

    url = get_current_settings().api.url or (LOCAL_API if api_answers(LOCAL_API) else None)
    params: dict[str, Any] = {"config": args.config, "launcher": args.launcher, "poll_interval": 2.0, "verify": not args.no_verify,
                              "group_id": new_group_id()}
    if args.launcher_options:
        params["launcher_options"] = json.loads(args.launcher_options)
    if url:
        os.environ["PREFECT_API_URL"] = str(url)
        print(f"Prefect API: {url}; running {args.config} as a run of {DEPLOYMENT} with the {args.launcher} launcher ...", flush=True)
        with temporary_settings(updates={PREFECT_API_URL: url}):
            flow_run = run_served(params, ROOT / ".olmix" / "demo-serve.log")
            state = flow_run.state
            ui = get_current_settings().ui_url
        flow_run_url = f"{str(ui).rstrip('/')}/runs/flow-run/{flow_run.id}" if ui else None
    else:
        from flows.swarm import swarm

        print(f"Prefect API: ephemeral (a temporary local server; no UI, no Retry); running {args.config} with the "
              f"{args.launcher} launcher ...", flush=True)
        state = swarm(**params, return_state=True)
        flow_run_url = None
    if not state.is_completed():
        print(f"the swarm flow ended {state.type.value}: {state.message}", file=sys.stderr)
        if flow_run_url:
            print(f"or press Retry on {flow_run_url} (while `make serve` runs)", file=sys.stderr)
        return 1
    outcome = state.result()
    print()
    print(report(outcome, flow_run_url))
    return 0


if __name__ == "__main__":
    sys.exit(main())
