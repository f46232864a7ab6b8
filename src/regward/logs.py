"""Log handler set-up for the CLI and the gate: plain text or one JSON object per line.

Only entry points call `install_handler`; library modules just use `logging.getLogger(__name__)`.
A request id, when set in `request_id`, is added to every record logged while that request runs.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("regward_request_id", default="-")


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object: time, level, logger, request id, message, error."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "request_id": getattr(record, "request_id", "-"),
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def install_handler(level: int, log_format: str = "text") -> None:
    """Send `regward` logs to stderr at `level`, as text or JSON lines."""
    package_logger = logging.getLogger("regward")
    for existing in list(package_logger.handlers):
        package_logger.removeHandler(existing)
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_RequestIdFilter())
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")
        )
    package_logger.addHandler(handler)
    package_logger.setLevel(level)
    package_logger.propagate = True
