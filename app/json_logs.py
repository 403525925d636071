"""Log records as one JSON object a line (``CITYWARN_LOG_FORMAT=json``), for log shippers.

Our own formatter rather than python-json-logger: the whole of it is the
fields below, and a dependency would bring options we would have to pin down.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any, Literal

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# What every LogRecord carries; anything else on a record came from ``extra=`` and is written as a field.
# uvicorn adds ``color_message``: the message again, with terminal colour codes.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "color_message",
}


class JsonFormatter(logging.Formatter):
    """time (RFC 3339, UTC), level, logger, message, traceback (one string, when there is one), extras."""

    def format(self, record: logging.LogRecord) -> str:
        at = datetime.fromtimestamp(record.created, UTC)
        entry: dict[str, Any] = {
            "time": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["traceback"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in entry:
                entry[key] = value
        # A value JSON cannot hold (a path, a datetime) is written as its text, never dropped.
        return json.dumps(entry, ensure_ascii=False, default=str)


def log_handler(log_format: Literal["text", "json"]) -> logging.Handler:
    """A handler on stderr writing the chosen format."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    return handler


def configure_logging(log_format: Literal["text", "json"], level: int = logging.INFO) -> None:
    """The root logger's handler, unless one is set already (as ``logging.basicConfig`` decides)."""
    logging.basicConfig(level=level, handlers=[log_handler(log_format)])
