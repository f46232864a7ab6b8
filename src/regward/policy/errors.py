"""Errors raised while loading a policy file or compiling one of its patterns."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from regward.errors import RegwardError

#: Maximum number of problems listed in one `PolicyError` message; the rest are counted.
MAX_LISTED_PROBLEMS = 50


@dataclass(frozen=True)
class PolicyProblem:
    """One mistake in a policy file."""

    path: str
    """Key path of the offending value, such as `rules[0].signatures.authorities[1].key`.

    The empty string means the document as a whole."""

    message: str
    """Expected and found values in lower case, without the key path."""

    line: int | None = None
    """1-based line of the offending value in the YAML text, when known."""

    def describe(self) -> str:
        """Return the problem as `path (line N): message`."""
        where = self.path or "document"
        if self.line is not None:
            where = f"{where} (line {self.line})"
        return f"{where}: {self.message}"


class PolicyError(RegwardError):
    """A policy file that cannot be used.

    The message names the file and lists every problem found with its key path, so one run
    of the loader reports all mistakes that validation could find together.
    """

    def __init__(self, source: str, problems: Sequence[PolicyProblem]) -> None:
        """Create the error for the policy `source` (a file path or `<string>`)."""
        self.source = source
        self.problems: tuple[PolicyProblem, ...] = tuple(problems)
        super().__init__(self._format())

    def _format(self) -> str:
        if len(self.problems) == 1:
            return f"invalid policy {self.source}: {self.problems[0].describe()}"
        lines = [f"invalid policy {self.source}: {len(self.problems)} problems"]
        lines.extend(f"  - {problem.describe()}" for problem in self.problems[:MAX_LISTED_PROBLEMS])
        hidden = len(self.problems) - MAX_LISTED_PROBLEMS
        if hidden > 0:
            lines.append(f"  - and {hidden} more")
        return "\n".join(lines)

    def diagnostics(self) -> str:
        """Return the problem list followed by a hint on how to check a fixed file."""
        return f"{self}\nfix the listed keys and load the policy again"


class PatternError(RegwardError):
    """A repository glob or tag pattern that cannot be compiled."""

    def __init__(self, pattern: str, reason: str) -> None:
        """Create the error for `pattern`, with `reason` saying what is wrong in it."""
        self.pattern = pattern
        self.reason = reason
        super().__init__(f"invalid pattern {pattern!r}: {reason}")
