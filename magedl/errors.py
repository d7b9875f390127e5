"""One typed hierarchy for every failure magedl reports.

Rule: each class carries the exit code the command line maps it to, so the mapping lives here and
nowhere else. Messages are one line, meant for a person, and never contain a credential (callers pass
URLs through :func:`magedl.secrecy.redact` first).
"""


class MagedlError(Exception):
    """Base of every error magedl raises on purpose.

    Attributes
    ----------
    exit_code : int
        The process exit code the CLI uses for this error.
    """

    exit_code = 1


class UsageError(MagedlError):
    """The command line or an argument is wrong (exit 2)."""

    exit_code = 2


class UnsafeNameError(UsageError):
    """A file name would land outside the chosen folder (exit 2)."""


class ConfigError(MagedlError):
    """Settings or credentials are missing, unreadable or unsafe (exit 1)."""


class LocalFileError(MagedlError):
    """A file or folder on this machine cannot be written: disk full, permissions (exit 1)."""


class BusyError(MagedlError):
    """Another magedl process holds the lock on this file or mirror (exit 1)."""


class FeedError(MagedlError):
    """The catalogue answer is not something we can parse (exit 1)."""


class AuthError(MagedlError):
    """The service refused the MAGEID or token: HTTP 401 (exit 3)."""

    exit_code = 3


class EntitlementError(MagedlError):
    """The account may not download this: HTTP 403 (exit 4)."""

    exit_code = 4


class NotFoundError(MagedlError):
    """HTTP 404, or a name that is not in the catalogue (exit 5)."""

    exit_code = 5


class IntegrityError(MagedlError):
    """What arrived is not the file the catalogue describes (exit 6)."""

    exit_code = 6


class ChecksumMismatch(IntegrityError):
    """The md5 of the received bytes differs from the feed's."""

    def __init__(self, file_name, expected, actual):
        self.file_name = file_name
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"{file_name}: md5 mismatch: the feed says {expected}, "
            f"the received file has {actual}; the bad data was discarded"
        )


class NotAnArchive(IntegrityError):
    """The body is an error page or otherwise not the archive named."""


class SignatureError(IntegrityError):
    """A mirror's ``SHA256SUMS.sig`` is missing, malformed, or does not verify against the allowed signers (exit 6).

    Its files are then not trusted: the checksums that vouch for them may have been changed to match.
    """


class UnverifiedFile(IntegrityError):
    """The feed has no md5 and ``--require-checksum`` was given."""


class NetworkError(MagedlError):
    """Network or server failure that outlasted every retry (exit 7)."""

    exit_code = 7


class TransientError(MagedlError):
    """A failure worth retrying (connection cut, 5xx, 429, short body).

    Raised inside the retry loop; once retries are exhausted the caller
    converts it to :class:`NetworkError`.

    Attributes
    ----------
    retry_after : float or None
        Seconds the server asked us to wait, from ``Retry-After``.
    """

    exit_code = 7

    def __init__(self, message, retry_after=None):
        super().__init__(message)
        self.retry_after = retry_after


class Interrupted(MagedlError):
    """The user pressed Ctrl-C (exit 130)."""

    exit_code = 130


class ConstraintError(UsageError):
    """A Composer version or constraint string cannot be parsed (exit 2).

    Raised for what a user typed; metadata from a repository that fails to
    parse is warned about and skipped by the caller instead.
    """


class UnsafeSourceError(MagedlError):
    """A mirror folder read as a source (``file://``) or being served holds, where a file
    should be, a symbolic link, a FIFO, device or folder, a file with other hard links, or one
    of magedl's side files; it is refused, never read (exit 1).
    """


class UnsatisfiableError(NotFoundError):
    """No version of a Composer package satisfies a constraint, or no repository lists the package (exit 5).

    The message names the requirement chain that led there
    (``psr/log ^9 (required by monolog/monolog 3.5.0 <- ...)``).
    """
