"""Error types: every user-facing failure names the field, file, row or column at fault."""


class OlmixError(Exception):
    """Base class for errors caused by input (config, data, results) rather than by a bug.

    `fields`: the config fields or parameters the message names (e.g. `group_id`, `objective`), so a front end can
    say them its own way (the CLI names its flags instead, see `olmix_core.commands._common.handle_errors`)."""

    def __init__(self, *args: object, fields: tuple[str, ...] = ()) -> None:
        super().__init__(*args)
        self.fields = tuple(fields)


class ConfigError(OlmixError):
    """An invalid experiment config; the message names the field."""


class DataError(OlmixError):
    """Invalid tables or data files; the message names the file, row and column."""


class ArtifactMissing(OlmixError):
    """An artifact the caller asked for is not in the store."""


class ArtifactCorrupt(OlmixError):
    """An artifact exists but cannot be parsed."""


class InfeasibleError(OlmixError):
    """Constraints that no mixture satisfies; the message names the constraint."""


class LaunchError(OlmixError):
    """A launcher could not submit, query or cancel runs."""


class StoreError(OlmixError):
    """The store (a local folder, S3, GCS) could not be read or written; the message names the URL and what to check."""
