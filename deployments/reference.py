"""Writes docs/reference/flows.md: each deployment of prefect.yaml with its flow's parameters.

Parameter descriptions are the ones Prefect itself parses from the flow's docstring (what the UI's run form shows),
types and defaults come from the flow's signature. It lives here, not in olmix_core, because it imports the flows
(and so Prefect). `make docs` runs it after `python -m olmix_core.docs_gen`; `--check` exits 1 when the page is
out of step with the code.
"""

from __future__ import annotations

import argparse
import inspect
import sys
import typing
from pathlib import Path
from typing import Any

from deployments.spec import PREFECT_YAML, load_flow, load_spec
from olmix_core.docs_gen import GENERATED, REFERENCE, anchor, cell, default_text, type_name, write_or_check

PAGE = REFERENCE / "flows.md"

INTRO = """\
One swarm is one flow run of the flow `olmix` (deployment `olmix/swarm`). Pass parameters with
`prefect deployment run olmix/swarm --param config=configs/examples/local-tiny.yaml` (or the UI's *Run* form, which
shows the same descriptions). How the deployments are served, cached and resumed: [orchestration](../orchestration.md)."""


def _schedules(d: dict[str, Any]) -> list[str]:
    out = []
    for s in d.get("schedules") or []:
        if "cron" in s:
            out.append(f"cron `{s['cron']}` ({s.get('timezone', 'UTC')})")
        elif "interval" in s:
            out.append(f"every {float(s['interval']):g} s")
    return out


def _triggers(d: dict[str, Any]) -> list[str]:
    out = []
    for t in d.get("triggers") or []:
        params = ", ".join(f"`{k}` = `{v}`" for k, v in (t.get("parameters") or {}).items())
        match = ", ".join(f"`{k}` = `{v}`" for k, v in (t.get("match") or {}).items())
        out.append(f"event `{', '.join(t.get('expect') or [])}` ({match}) starts a run with {params}")
    return out


def _section(doc: str, title: str) -> str:
    """One Google-style docstring section (`Returns:`), joined into one line."""
    head = f"\n{title}:\n"
    if head not in doc:
        return ""
    body = doc.split(head, 1)[1].split("\n\n", 1)[0]
    return " ".join(body.split())


def render_flows() -> str:
    lines = [GENERATED.format(source="the flows' signatures and docstrings and `prefect.yaml`"), "", "# Flow reference", "", INTRO]
    spec = load_spec(PREFECT_YAML)
    flows = [(d, load_flow(d["entrypoint"])) for d in spec]
    names = [f"{f.name}/{d['name']}" for d, f in flows]
    lines += [""] + [f"- [`{n}`](#{anchor(n)})" for n in names]
    for d, flow in flows:
        described = flow.parameters.model_dump()["properties"]
        signature = inspect.signature(flow.fn)
        hints = typing.get_type_hints(flow.fn)
        summary = inspect.getdoc(flow.fn).split("\n\n", 1)[0]
        lines += ["", f"## `{flow.name}/{d['name']}`", "", f"Flow `{flow.name}` (`{d['entrypoint']}`): {flow.description}", ""]
        lines += [" ".join(summary.split()), ""]
        for label, items in (("Schedules", _schedules(d)), ("Triggers", _triggers(d))):
            if items:
                lines += [f"{label}: " + "; ".join(items) + ".", ""]
        lines += ["| parameter | type | default | meaning |", "|---|---|---|---|"]
        for name, p in signature.parameters.items():
            default = "required" if p.default is inspect.Parameter.empty else default_text(p.default)
            meaning = (described.get(name) or {}).get("description", "")
            lines.append(f"| `{name}` | {cell(type_name(hints.get(name, p.annotation)))} | {cell(default)} | {cell(meaning)} |")
        returns = _section(inspect.getdoc(flow.fn), "Returns")
        ret = hints.get("return")
        if ret is not None or returns:
            lines += ["", f"Returns `{type_name(ret)}`" + (f": {returns}" if returns else ".")]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write docs/reference/flows.md from the flows and prefect.yaml.")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if the page is out of step")
    return write_or_check({Path(PAGE): render_flows}, parser.parse_args(argv).check)


if __name__ == "__main__":
    sys.exit(main())
