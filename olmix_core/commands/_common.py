"""Helpers shared by the CLI commands."""

from __future__ import annotations

import functools
import sys
from typing import Any, Callable

import click

from olmix_core.errors import OlmixError


def handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn an OlmixError into a one-line message on stderr and exit code 1 (no traceback for bad input), and so
    a storage error that did not go through the store (botocore, fsspec, an OS error on a path): what failed, on
    which path, and what to check."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from olmix_core.store import describe_fault, store_faults

        try:
            return fn(*args, **kwargs)
        except OlmixError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(1)
        except store_faults() as e:
            where = getattr(e, "filename", None) or "the store"
            click.echo(f"error: {describe_fault(str(where), 'read or write', e, setting=None)}", err=True)
            sys.exit(1)

    return wrapper


def config_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--config", "-c", "config_path", required=True, help="Experiment config YAML (path or URL).")(fn)


def write_local_file(path: str, text: str) -> str:
    """Write an output file the user named, creating its folder; atomic (write, then rename). Returns the path."""
    import os

    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)
    return path
