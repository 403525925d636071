"""Settings and the city's own data files (sensor catalog, areas, thresholds)."""

from config.settings import Settings

__all__ = ["Settings"]
