"""Helpers shared by the CLI commands."""

from __future__ import annotations

import functools
import re
import sys
from typing import Any, Callable

import click

from olmix_core.errors import OlmixError

# library field/parameter names -> the flags that set them, for error messages (`olmix fit` maps the fit options'
# fields itself: olmix_core.commands.fit.FIELDS)
FLAGS = {
    "group_id": "--group-id",
    "mixtures": "--mixtures",
    "dashboard": "--dashboard",
    "backend": "--backend",
    "rounds": "--rounds",
    "round_variants": "--round-variants",
    "min_improvement": "--min-improvement",
}


def cli_message(error: OlmixError) -> str:
    """The error's message with the fields it names (`error.fields`) said as this CLI's flags."""
    msg = str(error)
    for name in error.fields:
        if name in FLAGS:
            msg = re.sub(rf"(?<![\w.-]){re.escape(name)}(?![\w-])", FLAGS[name], msg)
    return msg


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
            click.echo(f"error: {cli_message(e)}", err=True)
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
