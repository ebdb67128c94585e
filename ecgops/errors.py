"""Errors that name the file and the problem, for clear messages at every entry point."""

from __future__ import annotations

from pathlib import Path


class EcgopsError(Exception):
    """Base class of ecgops errors that the CLI reports without a traceback."""


class DataError(EcgopsError):
    """Bad input data: names the offending file and what is wrong with it."""

    def __init__(self, path: str | Path | None, problem: str) -> None:
        self.path = str(path) if path is not None else None
        self.problem = problem
        where = f"{self.path}: " if self.path else ""
        super().__init__(f"{where}{problem}")


class ValidationFailed(DataError):
    """A dataset failed its Great Expectations suite."""

    def __init__(
        self, path: str | Path | None, failures: list[str], report: str | Path | None = None
    ) -> None:
        self.failures = failures
        self.report = str(report) if report else None
        detail = "; ".join(failures)
        extra = f" (report: {self.report})" if self.report else ""
        super().__init__(path, f"validation failed: {detail}{extra}")


class RegistryError(EcgopsError):
    """A registry operation (register, promote, rollback) could not be done safely."""


class TrackingUnavailable(EcgopsError):
    """The MLflow tracking server cannot be reached."""
