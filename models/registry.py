"""Named detectors, so the service, the harness and the tests pick them by name.

Names carry no underscores: NAB's own tools split result file names on ``_``.
"""

from __future__ import annotations

from models.protocol import StreamingDetector

DETECTORS: dict[str, type[StreamingDetector]] = {}


def register(cls: type[StreamingDetector]) -> type[StreamingDetector]:
    """Class decorator adding a detector to the registry under ``cls.name``."""
    if "_" in cls.name:
        raise ValueError(f"detector name {cls.name!r} must not contain '_'")
    DETECTORS[cls.name] = cls
    return cls


def detector_class(name: str) -> type[StreamingDetector]:
    _load_builtin()
    try:
        return DETECTORS[name]
    except KeyError:
        known = ", ".join(sorted(DETECTORS)) or "none"
        raise KeyError(f"unknown detector {name!r}; known: {known}") from None


def _load_builtin() -> None:
    """Import the built-in detector modules so their ``@register`` runs."""
    import models.detectors  # noqa: F401


DEFAULT_DETECTOR = "recordensemble"
