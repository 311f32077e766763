"""`make serve` / `python -m deployments.serve`: serve every deployment of prefect.yaml from this process.

No work pool or worker needed: while this runs, `prefect deployment run olmix/swarm --param config=...` (or the
UI's "Run" button) starts a flow run here, the watcher runs every 5 minutes and the re-fit on its schedule and on
`olmix.evals.landed` events. It talks to the Prefect API in PREFECT_API_URL (a server started with
`prefect server start`); without one set, it uses a server on 127.0.0.1:$PREFECT_SERVER_API_PORT (default 4200)
when one answers there. A server's UI asks the API on the port in *its* PREFECT_SERVER_API_PORT (or
PREFECT_UI_API_URL), not the one given with `--port`: start it with `make server PREFECT_PORT=N`, and serve with
`make serve PREFECT_PORT=N`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.parse
import urllib.request


def local_api() -> str:
    """The API of a server started on this machine with `make server` (PREFECT_SERVER_API_PORT, default 4200)."""
    return f"http://127.0.0.1:{os.environ.get('PREFECT_SERVER_API_PORT') or 4200}/api"


LOCAL_API = local_api()


def api_answers(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/health", timeout=timeout) as r:
            return r.status == 200
    except OSError:
        return False


def resolve_api_url() -> str | None:
    """PREFECT_API_URL (environment or profile), else a local server on 127.0.0.1:4200 if it answers."""
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url
    if url:
        return str(url)
    return LOCAL_API if api_answers(LOCAL_API) else None


def ui_mismatch(url: str, timeout: float = 2.0) -> str | None:
    """A warning when the server's UI asks another API than `url` (a server started with `--port N` but without
    PREFECT_SERVER_API_PORT=N: its UI asks 4200 and shows none of the runs), else None."""
    parts = urllib.parse.urlsplit(url)
    try:
        with urllib.request.urlopen(f"{parts.scheme}://{parts.netloc}/ui-settings", timeout=timeout) as r:
            ui_api = json.loads(r.read()).get("api_url")
    except (OSError, ValueError):
        return None
    if not ui_api or urllib.parse.urlsplit(ui_api).port == parts.port:  # localhost vs 127.0.0.1 is no mismatch
        return None
    return (f"warning: the Prefect UI at {parts.scheme}://{parts.netloc} asks the API at {ui_api}, not {url}, so it will not "
            f"show these runs. Restart the server with `make server PREFECT_PORT={parts.port}` "
            f"(PREFECT_SERVER_API_PORT={parts.port} prefect server start), or set PREFECT_UI_API_URL={url} for it.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve the olmix deployments (olmix/swarm, olmix-refit/refit, olmix-watch-evals/watch).")
    parser.add_argument("--limit", type=int, default=None, help="at most this many flow runs at a time")
    parser.add_argument("--only", action="append", default=None, metavar="NAME",
                        help="serve only this deployment of prefect.yaml (e.g. swarm); repeatable")
    args = parser.parse_args(argv)
    url = resolve_api_url()
    if url is None:
        print(f"error: no Prefect API at {LOCAL_API}. Start one with `make server` (UI on http://127.0.0.1:4200; another port: "
              "`make server PREFECT_PORT=N`, then `make serve PREFECT_PORT=N`), or set PREFECT_API_URL.", file=sys.stderr)
        return 1
    from prefect import serve
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from deployments.spec import build_deployments

    warning = ui_mismatch(url)
    if warning:
        print(warning, file=sys.stderr)
    os.environ["PREFECT_API_URL"] = url  # for the flow run processes
    with temporary_settings(updates={PREFECT_API_URL: url}):
        deployments = [d for d in build_deployments() if not args.only or d.name in args.only]
        print(f"serving {', '.join(f'{d.flow_name}/{d.name}' for d in deployments)} against {url}")
        print("run a swarm with: prefect deployment run olmix/swarm --param config=configs/examples/local-tiny.yaml --watch")
        serve(*deployments, limit=args.limit)
    return 0


if __name__ == "__main__":
    sys.exit(main())
