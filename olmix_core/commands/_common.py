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
}


def cli_message(error: OlmixError) -> str:
    """The error's message with the fields it names (`error.fields`) said as this CLI's flags."""
    msg = str(error)
    for name in error.fields:
        if name in FLAGS:
            msg = re.sub(rf"(?<![\w.-]){re.escape(name)}(?![\w-])", FLAGS[name], msg)
    return msg


def handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn an OlmixError into a one-line message on stderr and exit code 1 (no traceback for bad input)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except OlmixError as e:
            click.echo(f"error: {cli_message(e)}", err=True)
            sys.exit(1)

    return wrapper


def config_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--config", "-c", "config_path", required=True, help="Experiment config YAML (path or URL).")(fn)
