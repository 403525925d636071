"""Built-in streaming detectors; importing this package registers them."""

from models.detectors import (
    record_deviation,  # noqa: F401
    record_ensemble,  # noqa: F401
    recordrarity,  # noqa: F401
    robust_mad,  # noqa: F401
    windowed_gaussian,  # noqa: F401
)
