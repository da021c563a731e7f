"""One exception tree. Every message names the file, column, line or setting at fault and what fixes it."""

from __future__ import annotations


class HandoffError(Exception):
    """Base of every error handoff raises on purpose; the CLI prints it without a traceback."""


class SettingsError(HandoffError):
    """A site parameters file is missing, malformed, or names something invalid."""


class ExtractError(HandoffError):
    """A source extract cannot be read as the contract and the site mapping say."""


class StaleExtractError(ExtractError):
    """An extract is of an earlier operating day than the review (docs/extracts.md, "How current the extracts are")."""


class MissingColumnError(ExtractError):
    """A required contract field is not in the file under its mapped name."""


class UnmappedValueError(ExtractError):
    """An enum column holds a value the site's `values:` mapping does not cover."""


class PathEscapeError(SettingsError):
    """A data path resolves outside the folders the site file allows."""


class LookupNotFound(HandoffError):
    """An identifier matched no order."""
