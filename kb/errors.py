"""One exception root for circuitkb, with a subclass per kind of failure."""

from __future__ import annotations


class CircuitKBError(Exception):
    """Root of every error circuitkb raises on purpose."""


class ConfigError(CircuitKBError):
    """The configuration (flags, environment) is incomplete or inconsistent."""


class FileFormatError(CircuitKBError):
    """An input file cannot be read: names the file, the place in it and the reason."""

    def __init__(self, path: str, where: str, reason: str) -> None:
        self.path = path
        self.where = where
        self.reason = reason
        location = f"{where}: " if where else ""
        super().__init__(f"{path}: {location}{reason}")

    def __reduce__(self) -> tuple[type, tuple[str, str, str]]:
        # pickled with its three parts (a file may be parsed in another process)
        return type(self), (self.path, self.where, self.reason)


class GraphFormatError(FileFormatError):
    """A graph file is malformed; ``where`` is a JSON path like ``links[1203].target``."""


class MetadataFormatError(FileFormatError):
    """A feature-metadata file (explanations, feature files, label CSV) is malformed."""


class NotFoundError(CircuitKBError):
    """A graph, feature or label that was asked for does not exist."""


class PermissionDenied(CircuitKBError):
    """The acting user may not do this."""


class StoreUnavailable(CircuitKBError):
    """A database server could not be reached."""


class ServerError(CircuitKBError):
    """The development Neo4j or PostgreSQL server could not be started or stopped."""


class SignInFailed(PermissionDenied):
    """A wrong user name or password, an expired session, or too many failed attempts."""


class EditConflict(CircuitKBError):
    """Someone saved the thing being edited since the version the edit was based on.

    ``current_version`` and ``current_text`` are what they saved, for the editor to merge.
    """

    def __init__(self, message: str, current_version: int, current_text: str, edited_by: str | None) -> None:
        self.current_version = current_version
        self.current_text = current_text
        self.edited_by = edited_by
        super().__init__(message)


class FamilyConflict(CircuitKBError):
    """Graphs already belong to another family (from a manifest or accepted before), and the
    change did not say to replace it. ``taken`` maps each such graph's slug to its family."""

    def __init__(self, message: str, taken: dict[str, str]) -> None:
        self.taken = taken
        super().__init__(message)
