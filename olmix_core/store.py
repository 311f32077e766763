"""The artifact store: one fsspec filesystem rooted at `storage_root` (local folder, s3://, gs://).

Every stage of a swarm writes its output here under `{root}/{swarm name}/{group id}/`, so a re-run or a retried
Prefect flow finds finished work, and `olmix launch status` works from any process.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import posixpath
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import fsspec
from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem

from olmix_core.errors import ArtifactCorrupt, ArtifactMissing, ConfigError, OlmixError, StoreError
from olmix_core.names import check_group_id, check_name

# An unresponsive S3 endpoint must fail in seconds, not minutes: botocore's connect/read timeouts and attempts, and
# s3fs's own retry loop around them (which would otherwise multiply the attempts by 5). Override with the env vars.
S3_CONNECT_TIMEOUT_S = 5.0
S3_READ_TIMEOUT_S = 5.0
S3_ATTEMPTS = 2
# A whole call (all attempts) on an object store may take at most this long: a paused endpoint can hold a request
# past botocore's read timeout (seen with uploads), and the sync wrapper's own deadline always ends it.
STORE_CALL_TIMEOUT_S = 20.0


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name) or default)
    except ValueError:
        return default


def s3_endpoint() -> str | None:
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")


if TYPE_CHECKING:
    from olmix_core.metadata import SwarmMetadata


def storage_options_for(url: str) -> dict[str, Any]:
    """Options for s3fs from the environment: a custom endpoint (`AWS_ENDPOINT_URL`, e.g. a local S3 server), and
    timeouts/attempts (`OLMIX_S3_CONNECT_TIMEOUT`, `OLMIX_S3_READ_TIMEOUT`, `OLMIX_S3_ATTEMPTS`)."""
    if url.startswith("s3://"):
        opts: dict[str, Any] = {
            "config_kwargs": {
                "connect_timeout": _env_float("OLMIX_S3_CONNECT_TIMEOUT", S3_CONNECT_TIMEOUT_S),
                "read_timeout": _env_float("OLMIX_S3_READ_TIMEOUT", S3_READ_TIMEOUT_S),
                "retries": {"total_max_attempts": max(1, int(_env_float("OLMIX_S3_ATTEMPTS", S3_ATTEMPTS))), "mode": "standard"},
            }
        }
        endpoint = s3_endpoint()
        if endpoint:
            opts["client_kwargs"] = {"endpoint_url": endpoint}
        return opts
    return {}


def open_fs(url: str, **storage_options: Any) -> tuple[fsspec.AbstractFileSystem, str]:
    """An fsspec filesystem and the path inside it for `url`, honouring a custom S3 endpoint and its timeouts."""
    opts = {**storage_options_for(url), **storage_options}
    try:
        fs, path = url_to_fs(url, **opts)
    except (ValueError, ImportError) as e:
        raise StoreError(f"{url}: cannot open this store ({e}); check the URL (a local path, s3://bucket/prefix or gs://bucket/prefix)") from None
    if url.startswith("s3://"):
        fs.retries = 1  # botocore retries (above); s3fs's loop would repeat each timeout 5 more times
    return fs, path


def store_faults() -> tuple[type[BaseException], ...]:
    """Exceptions that mean the store failed (not a missing or corrupt artifact): OS errors, botocore, aiohttp."""
    faults: list[type[BaseException]] = [OSError]
    with contextlib.suppress(ImportError):
        from botocore.exceptions import BotoCoreError, ClientError

        faults += [BotoCoreError, ClientError]
    with contextlib.suppress(ImportError):
        from aiohttp import ClientError as AiohttpError

        faults.append(AiohttpError)
    return tuple(faults)


def describe_fault(url: str, action: str, exc: BaseException, setting: str | None = "storage_root") -> str:
    """One line: what failed where, why, and what to check (`setting`: the config field that names the place)."""
    why = " ".join(str(exc).split()) or type(exc).__name__
    field = f" ({setting})" if setting else ""
    if url.startswith("s3://"):
        endpoint = s3_endpoint()
        hint = (f"check that the S3 endpoint {endpoint} (AWS_ENDPOINT_URL) is up and reachable" if endpoint
                else "check your network and that S3 is reachable") + ", that the bucket exists and that the AWS credentials may use it"
    elif url.startswith(("gs://", "gcs://")):
        hint = "check your network, that the bucket exists and that the Google credentials may use it"
    elif isinstance(exc, OSError) and exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        hint = f"check that the folder is writable by you{field}"
    elif isinstance(exc, OSError) and exc.errno in (errno.ENOTDIR, errno.ENAMETOOLONG, errno.EINVAL, errno.EISDIR, errno.EEXIST):
        hint = f"check that the path{field} can exist: no file among its parents, no name too long"
    elif isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        hint = "free some disk space"
    else:
        hint = f"check the path{field} and that the store is reachable"
    return f"{url}: could not {action} ({type(exc).__name__}: {why}); {hint}"


@contextlib.contextmanager
def store_call(url: str, action: str, missing_ok: bool = True) -> Iterator[None]:
    """Turn a store failure inside the block into a StoreError naming `url`; FileNotFoundError passes through when
    `missing_ok` (callers turn it into ArtifactMissing or an empty listing)."""
    try:
        yield
    except OlmixError:
        raise
    except FileNotFoundError as e:
        if missing_ok:
            raise
        raise StoreError(describe_fault(url, action, e)) from e
    except store_faults() as e:
        raise StoreError(describe_fault(url, action, e)) from e


class ArtifactStore:
    """Keys are '/'-separated paths under the root; values are bytes, text or JSON."""

    def __init__(self, root: str, **storage_options: Any) -> None:
        self.root_url = root.rstrip("/") or "/"
        with store_call(self.root_url, "open the store", missing_ok=False):
            self.fs, self.root = open_fs(self.root_url, **storage_options)
        self.is_local = isinstance(self.fs, LocalFileSystem)
        if self.is_local:
            self.root = os.path.abspath(self.root)
            self.root_url = self.root
        # keyword for every call on an async (object store) filesystem: fsspec's deadline for the whole call
        self.call_kwargs: dict[str, Any] = {} if not getattr(self.fs, "async_impl", False) else {
            "timeout": _env_float("OLMIX_STORE_CALL_TIMEOUT", STORE_CALL_TIMEOUT_S)}

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
        with store_call(self.url(key), "write", missing_ok=False):
            if self.is_local:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                tmp = f"{path}.tmp-{uuid.uuid4().hex}"
                try:
                    with open(tmp, "wb") as f:
                        f.write(data)
                    os.replace(tmp, path)
                finally:
                    with contextlib.suppress(OSError):
                        os.unlink(tmp)
            else:
                self.fs.pipe_file(path, data, **self.call_kwargs)  # one PUT: object stores make it atomic
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
        with store_call(self.url(key), "delete", missing_ok=False):
            if self.fs.exists(path, **self.call_kwargs):
                self.fs.rm(path, recursive=True, **self.call_kwargs)

    def check_writable(self) -> None:
        """Write and delete a probe file at the root: a read-only or impossible store fails here, before any work."""
        key = f".olmix-write-check-{uuid.uuid4().hex}"
        self.write_bytes(key, b"")
        self.delete(key)

    # reads -----------------------------------------------------------------------------------
    def exists(self, key: str) -> bool:
        with store_call(self.url(key), "check for"):
            self._invalidate(key)
            return self.fs.exists(self.path(key), **self.call_kwargs)

    def read_bytes(self, key: str) -> bytes:
        try:
            with store_call(self.url(key), "read"):
                self._invalidate(key)
                return self.fs.cat_file(self.path(key), **self.call_kwargs)
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
        try:
            with store_call(self.url(key), "list"):
                self._invalidate(key)
                entries = self.fs.ls(path, detail=False, **self.call_kwargs)
        except (FileNotFoundError, NotADirectoryError):
            return []
        return sorted(posixpath.basename(e.rstrip("/")) for e in entries if e.rstrip("/") != path.rstrip("/"))

    def find_json(self, prefix: str, filename: str, corrupt: dict[str, str] | None = None) -> dict[str, Any]:
        """Every `{prefix}/*/{filename}` with one listing and one batched read: {child name: parsed JSON}.

        The number of storage requests does not grow with the number of runs. A corrupt file raises, naming it, or,
        with `corrupt` given, is left out and recorded there ({child: message}) so one bad file hides nothing else."""
        base = self.path(prefix)
        try:
            with store_call(self.url(prefix), "list"):
                self._invalidate(prefix)
                found = self.fs.find(base, **self.call_kwargs)
        except FileNotFoundError:
            return {}
        out: dict[str, Any] = {}
        paths = [p for p in found if posixpath.basename(p) == filename and posixpath.dirname(posixpath.dirname(p)).rstrip("/") == base.rstrip("/")]
        if not paths:
            return {}
        with store_call(self.url(prefix), f"read the {filename} files under", missing_ok=False):
            blobs = self.cat_many(paths)
        for p, data in blobs.items():
            child = posixpath.basename(posixpath.dirname(p))
            try:
                out[child] = json.loads(data)
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                message = f"{self.fs.unstrip_protocol(p) if not self.is_local else p}: corrupt JSON ({e})"
                if corrupt is None:
                    raise ArtifactCorrupt(message) from None
                corrupt[child] = message
        return out

    def cat_many(self, paths: list[str]) -> dict[str, bytes]:
        """{path: bytes} for filesystem paths in one batched read; a file deleted since it was listed is left out."""
        if len(paths) == 1:
            try:
                return {paths[0]: self.fs.cat_file(paths[0], **self.call_kwargs)}
            except FileNotFoundError:
                return {}
        blobs = self.fs.cat(paths, on_error="return", **self.call_kwargs)
        for err in blobs.values():
            if isinstance(err, BaseException) and not isinstance(err, FileNotFoundError):
                raise err
        return {p: b for p, b in blobs.items() if not isinstance(b, BaseException)}

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

    def read_run_files(self, filename: str, corrupt: dict[str, str] | None = None) -> dict[str, Any]:
        """`runs/*/{filename}` for every run, in bulk (one listing, one batched read); see `ArtifactStore.find_json`."""
        return self.store.find_json(self.key("runs"), filename, corrupt)

    def metadata(self) -> SwarmMetadata:
        """metadata.json, typed (written only by `olmix_core.metadata.update_metadata`)."""
        from olmix_core.metadata import read_metadata

        return read_metadata(self)


def find_swarm(storage_root: str, group_id: str) -> SwarmStore:
    """Locate a swarm by group id alone (for commands given only a group id)."""
    store = ArtifactStore(storage_root)
    check_group_id(group_id)
    names = [name for name in store.list() if group_id in store.list(name)]
    if len(names) > 1:
        raise ConfigError(f"group id {group_id} is under several swarms in {store.root_url}: {', '.join(names)}; "
                              "pass --config with the swarm's config to say which")
    if names:
        return SwarmStore(store, names[0], group_id)
    raise ArtifactMissing(f"no swarm with group id {group_id} under {store.root_url}")
