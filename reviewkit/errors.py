"""Errors a user sees. Each names what went wrong and where (file, field, row, study)."""


class ReviewkitError(ValueError):
    """Base class for errors caused by input or state the user can fix."""


class ProtocolError(ReviewkitError):
    """The review protocol file is malformed."""


class SnapshotError(ReviewkitError):
    """A snapshot is missing a recorded request or is inconsistent."""


class EntrezError(ReviewkitError):
    """NCBI E-utilities answered with an error, or kept failing."""


class ProjectError(ReviewkitError):
    """The review's project folder cannot be found, or its reviewkit.yml is malformed."""


class UnsafePathError(ReviewkitError):
    """A path leaves its folder or goes through a symbolic link, and was refused."""
