"""Artifacts updated in place: one artifact per key and flow run, its data replaced (PATCH /artifacts/{id}) on
every update, so the UI shows one live card instead of a new version per poll. A new flow run (a re-fit, or the
swarm re-run by group id) starts a new version of the key; a retry of the same flow run updates its own one."""

from __future__ import annotations

import hashlib
import json
import threading
from typing import Any
from uuid import UUID

from prefect import get_run_logger
from prefect.artifacts import TableArtifact, create_markdown_artifact, create_progress_artifact, create_table_artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import ArtifactUpdate
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey
from prefect.runtime import flow_run

_LOCK = threading.Lock()
_IDS: dict[tuple[str | None, str], UUID] = {}  # (flow run id, key) -> artifact id
_LAST: dict[UUID, str] = {}  # artifact id -> digest of its data and description
_ROOTS: dict[str, str] = {}  # flow run id -> its root flow run id


def _card_run_id() -> str | None:
    """The flow run whose cards an update goes to: the root flow run, so a sub-flow (an adaptive swarm's round)
    updates the swarm's live cards instead of starting its own (which would then show as the key's latest)."""
    run_id = flow_run.get_id()
    if run_id is None:
        return None
    if run_id not in _ROOTS:
        try:
            _ROOTS[run_id] = str(flow_run.root_flow_run_id or run_id)
        except Exception:  # noqa: BLE001 - an unknown parent: this run's own cards
            _ROOTS[run_id] = run_id
    return _ROOTS[run_id]


def _existing(flow_run_id: str | None, key: str) -> UUID | None:
    if flow_run_id is None:
        return None
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=[key]), flow_run_id=ArtifactFilterFlowRunId(any_=[UUID(flow_run_id)])))
    return max(found, key=lambda a: a.created).id if found else None


def _publish(kind: str, key: str, data: Any, description: str) -> UUID | None:
    """Create the key's artifact for this flow run, or update it in place; None (logged) if the API refused: an
    artifact is the user's window, never a reason to fail a stage."""
    run_id = _card_run_id()
    encoded = data if isinstance(data, str) else json.dumps(data)
    digest = hashlib.sha256(f"{encoded}\0{description}".encode()).hexdigest()
    try:
        with _LOCK:
            artifact_id = _IDS.get((run_id, key)) or _existing(run_id, key)
            if artifact_id is None:
                if kind == "markdown":
                    artifact_id = create_markdown_artifact(data, key=key, description=description)
                elif kind == "table":
                    artifact_id = create_table_artifact(data, key=key, description=description)
                else:
                    artifact_id = create_progress_artifact(data, key=key, description=description)
            elif _LAST.get(artifact_id) != digest:
                payload = json.dumps(TableArtifact._sanitize(data)) if kind == "table" else data
                with get_client(sync_client=True) as client:
                    client.update_artifact(artifact_id, ArtifactUpdate(data=payload, description=description))
            _IDS[(run_id, key)] = artifact_id
            _LAST[artifact_id] = digest
            return artifact_id
    except Exception as e:  # noqa: BLE001 - see the docstring
        get_run_logger().warning("could not update the %s artifact %s: %s", kind, key, e)
        return None


def publish_markdown(key: str, text: str, description: str) -> UUID | None:
    return _publish("markdown", key, text, description)


def publish_table(key: str, rows: list[dict[str, Any]], description: str) -> UUID | None:
    return _publish("table", key, rows, description)


def publish_progress(key: str, percent: float, description: str) -> UUID | None:
    return _publish("progress", key, float(percent), description)
