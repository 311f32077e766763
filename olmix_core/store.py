"""The artifact store: one fsspec filesystem rooted at `storage_root` (local folder, s3://, gs://).

Every stage of a swarm writes its output here under `{root}/{swarm name}/{group id}/`, so a re-run or a retried
Prefect flow finds finished work, and `olmix launch status` works from any process.
"""

from __future__ import annotations

import json
import os
import posixpath
import uuid
from typing import TYPE_CHECKING, Any

import fsspec
from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem

from olmix_core.errors import ArtifactCorrupt, ArtifactMissing
from olmix_core.names import check_group_id, check_name

if TYPE_CHECKING:
    from olmix_core.metadata import SwarmMetadata


def storage_options_for(url: str) -> dict[str, Any]:
    """Options for s3fs from the environment: a custom endpoint (`AWS_ENDPOINT_URL`, e.g. a local S3 server)."""
    if url.startswith("s3://"):
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        if endpoint:
            return {"client_kwargs": {"endpoint_url": endpoint}}
    return {}


def open_fs(url: str, **storage_options: Any) -> tuple[fsspec.AbstractFileSystem, str]:
    """An fsspec filesystem and the path inside it for `url`, honouring a custom S3 endpoint."""
    opts = {**storage_options_for(url), **storage_options}
    return url_to_fs(url, **opts)


class ArtifactStore:
    """Keys are '/'-separated paths under the root; values are bytes, text or JSON."""

    def __init__(self, root: str, **storage_options: Any) -> None:
        self.root_url = root.rstrip("/") or "/"
        self.fs, self.root = open_fs(self.root_url, **storage_options)
        self.is_local = isinstance(self.fs, LocalFileSystem)
        if self.is_local:
            self.root = os.path.abspath(self.root)
            self.root_url = self.root

    def path(self, key: str) -> str:
        key = key.strip("/")
        if ".." in key.split("/"):
            raise ValueError(f"artifact key {key!r} must not contain '..'")
        return posixpath.join(self.root, key) if key else self.root

    def url(self, key: str) -> str:
        """A URL for `key` that another process (or a Beaker job) can open with fsspec."""
        p = self.path(key)
        if self.is_local:
            return p
        return self.fs.unstrip_protocol(p)

    # writes ----------------------------------------------------------------------------------
    def write_bytes(self, key: str, data: bytes) -> str:
        """Atomic: readers see the old content or the new one, never a partial file."""
        path = self.path(key)
        if self.is_local:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = f"{path}.tmp-{uuid.uuid4().hex}"
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        else:
            self.fs.pipe_file(path, data)  # one PUT: object stores make it atomic
        return self.url(key)

    def write_text(self, key: str, text: str) -> str:
        return self.write_bytes(key, text.encode())

    def write_json(self, key: str, obj: Any) -> str:
        return self.write_text(key, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")

    def upload(self, local_path: str, key: str) -> str:
        with open(local_path, "rb") as f:
            return self.write_bytes(key, f.read())

    def delete(self, key: str) -> None:
        path = self.path(key)
        if self.fs.exists(path):
            self.fs.rm(path, recursive=True)

    # reads -----------------------------------------------------------------------------------
    def exists(self, key: str) -> bool:
        self._invalidate(key)
        return self.fs.exists(self.path(key))

    def read_bytes(self, key: str) -> bytes:
        self._invalidate(key)
        try:
            return self.fs.cat_file(self.path(key))
        except FileNotFoundError:
            raise ArtifactMissing(f"{self.url(key)}: artifact not found") from None

    def read_text(self, key: str) -> str:
        data = self.read_bytes(key)
        try:
            return data.decode()
        except UnicodeDecodeError as e:
            raise ArtifactCorrupt(f"{self.url(key)}: not UTF-8 text ({e})") from None

    def read_json(self, key: str) -> Any:
        text = self.read_text(key)
        try:
            return json.loads(text)
        except json.JSONDecodeError as e:
            raise ArtifactCorrupt(f"{self.url(key)}: corrupt JSON ({e})") from None

    def read_json_or(self, key: str, default: Any) -> Any:
        try:
            return self.read_json(key)
        except ArtifactMissing:
            return default

    def list(self, key: str = "") -> list[str]:
        """Names directly under `key` (files and folders), sorted; [] when it does not exist."""
        path = self.path(key)
        self._invalidate(key)
        try:
            entries = self.fs.ls(path, detail=False)
        except FileNotFoundError:
            return []
        return sorted(posixpath.basename(e.rstrip("/")) for e in entries if e.rstrip("/") != path.rstrip("/"))

    def find_json(self, prefix: str, filename: str) -> dict[str, Any]:
        """Every `{prefix}/*/{filename}` with one listing and one batched read: {child name: parsed JSON}.

        The number of storage requests does not grow with the number of runs; a corrupt file raises, naming it."""
        base = self.path(prefix)
        self._invalidate(prefix)
        try:
            found = self.fs.find(base)
        except FileNotFoundError:
            return {}
        out: dict[str, Any] = {}
        paths = [p for p in found if posixpath.basename(p) == filename and posixpath.dirname(posixpath.dirname(p)).rstrip("/") == base.rstrip("/")]
        if not paths:
            return {}
        blobs = self.fs.cat(paths) if len(paths) > 1 else {paths[0]: self.fs.cat_file(paths[0])}
        for p, data in blobs.items():
            child = posixpath.basename(posixpath.dirname(p))
            try:
                out[child] = json.loads(data)
            except json.JSONDecodeError as e:
                raise ArtifactCorrupt(f"{self.fs.unstrip_protocol(p) if not self.is_local else p}: corrupt JSON ({e})") from None
        return out

    def _invalidate(self, key: str) -> None:
        """Object-store listings are cached per filesystem instance; other processes write too."""
        if not self.is_local:
            self.fs.invalidate_cache(self.path(key))


class SwarmStore:
    """The layout of one swarm (`{root}/{name}/{group id}/...`, see docs/reference/store.md and docs/design.md)."""

    def __init__(self, store: ArtifactStore, swarm_name: str, group_id: str) -> None:
        self.store = store
        self.name = check_name(swarm_name, "swarm name")
        self.group_id = check_group_id(group_id)
        self.prefix = f"{self.name}/{self.group_id}"

    @classmethod
    def open(cls, storage_root: str, swarm_name: str, group_id: str) -> "SwarmStore":
        return cls(ArtifactStore(storage_root), swarm_name, group_id)

    def key(self, *parts: str) -> str:
        return "/".join([self.prefix, *parts])

    def url(self, *parts: str) -> str:
        return self.store.url(self.key(*parts))

    # well-known artifacts
    CONFIG = "config.yaml"
    METADATA = "metadata.json"
    PRIORS = "priors.json"
    MIXTURES = "mixtures.json"

    def run_key(self, run: str, filename: str) -> str:
        return self.key("runs", check_name(run, "run name"), filename)

    def eval_script_key(self) -> str:
        return self.key("eval_scripts", f"olmix-{self.group_id}.sh")

    def results_key(self, filename: str) -> str:
        return self.key("results", filename)

    def fit_key(self, fit_id: str, filename: str = "") -> str:
        return self.key("fits", check_name(fit_id, "fit id"), filename) if filename else self.key("fits", fit_id)

    def run_names(self) -> list[str]:
        return self.store.list(self.key("runs"))

    def read_run_files(self, filename: str) -> dict[str, Any]:
        """`runs/*/{filename}` for every run, in bulk (one listing, one batched read)."""
        return self.store.find_json(self.key("runs"), filename)

    def metadata(self) -> SwarmMetadata:
        """metadata.json, typed (written only by `olmix_core.metadata.update_metadata`)."""
        from olmix_core.metadata import read_metadata

        return read_metadata(self)


def find_swarm(storage_root: str, group_id: str) -> SwarmStore:
    """Locate a swarm by group id alone (for commands given only a group id)."""
    store = ArtifactStore(storage_root)
    check_group_id(group_id)
    for name in store.list():
        if group_id in store.list(name):
            return SwarmStore(store, name, group_id)
    raise ArtifactMissing(f"no swarm with group id {group_id} under {store.root_url}")
