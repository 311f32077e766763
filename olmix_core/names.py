"""Names that travel through paths, shell scripts, Beaker and S3 keys: generated and checked in one place."""

from __future__ import annotations

import re
import secrets

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
GROUP_ID_RE = re.compile(r"^[0-9a-f]{8}$")
RUN_NAME_RE = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)-(?P<group>[0-9a-f]{8})-(?P<variant>\d{4,})$")
# C0 controls (newline, tab, NUL, ...), DEL and C1 controls: they end shell comments and split paths and log lines.
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f]")
MAX_FILE_NAME = 255  # bytes in one path segment on common file systems (ext4, xfs, apfs) and in an S3 key segment


def new_group_id() -> str:
    """A fresh swarm id: 8 lowercase hex characters, generated once per swarm and never on retry."""
    return secrets.token_hex(4)


def check_name(value: str, what: str = "name") -> str:
    if not isinstance(value, str) or not NAME_RE.match(value):
        raise ValueError(f"{what} {value!r} must match [A-Za-z0-9][A-Za-z0-9._-]* (it reaches shell scripts, Beaker and S3 keys)")
    return value


def check_no_control(value: str, what: str = "value") -> str:
    """Reject control characters in a value that reaches a path, a name or a script, naming it."""
    m = CONTROL_RE.search(value)
    if m:
        raise ValueError(f"{what} {value!r} contains a control character ({m.group()!r} at position {m.start()}); remove it")
    return value


def max_swarm_name_length(variants: int) -> int:
    """The longest swarm name whose run names (`{name}-{group id}-{variant:04d}`) still fit in one file name."""
    return MAX_FILE_NAME - len(f"-{'0' * 8}-{max(variants - 1, 0):04d}")


def check_group_id(value: str) -> str:
    if not isinstance(value, str) or not GROUP_ID_RE.match(value):
        raise ValueError(f"group id {value!r} must be 8 lowercase hex characters")
    return value


def run_name(name: str, group_id: str, variant: int) -> str:
    """`{config.name}-{group_id}-{variant:04d}`: unique per swarm, safe as a path segment."""
    return f"{check_name(name)}-{check_group_id(group_id)}-{variant:04d}"


def parse_run_name(run: str) -> tuple[str, str, int]:
    m = RUN_NAME_RE.match(run)
    if not m:
        raise ValueError(f"{run!r} is not a run name of the form <name>-<group id>-<variant>")
    return m["name"], m["group"], int(m["variant"])


def is_run_name(name: str) -> bool:
    """Whether a folder under runs/ is a run (and not a stray file or folder someone left there)."""
    return RUN_NAME_RE.match(name) is not None

