"""Errors raised by the vulnerability engine: version ordering, OSV records, feeds and sync."""

from __future__ import annotations

from regward.errors import RegwardError


class VulnsError(RegwardError):
    """Base class of every error raised by `regward.vulns`."""


class VersionError(VulnsError):
    """Base class of version ordering errors."""


class InvalidVersionError(VersionError):
    """A version string is outside the grammar that its ecosystem's ordering accepts."""

    def __init__(self, family: str, version: str, reason: str) -> None:
        super().__init__(f"invalid {family} version {version!r}: {reason}")
        self.family = family
        """The ordering family that rejected the version: `dpkg`, `apk`, `rpm`, `pep440`, …"""
        self.version = version
        """The rejected version string."""
        self.reason = reason
        """What is wrong with it."""


class UnsupportedEcosystemError(VersionError):
    """No version ordering is known for an ecosystem."""

    def __init__(self, ecosystem: str) -> None:
        super().__init__(f"no version ordering for ecosystem {ecosystem!r}")
        self.ecosystem = ecosystem
        """The ecosystem as given."""


class OSVRecordError(VulnsError):
    """An OSV record does not follow the OSV schema."""


class FeedError(VulnsError):
    """A feed could not be read or stored."""


class FeedSyncError(FeedError):
    """A sync from a remote feed failed; the previous revision stays active."""

    def __init__(
        self, message: str, url: str | None = None, status_code: int | None = None
    ) -> None:
        super().__init__(message)
        self.url = url
        """The URL whose fetch failed, when the failure is a transport error."""
        self.status_code = status_code
        """The HTTP status code, when the server sent a response."""

    def diagnostics(self) -> str:
        """Return the error with a remedy."""
        return (
            f"{self}\nThe previously synced feed revision is still active. "
            "Check the feed URL and the network, then run the sync again."
        )
