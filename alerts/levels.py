"""The four-colour warning scale and how it maps onto CAP 1.2."""

from __future__ import annotations

from config.catalog import LEVELS

# China's public early-warning colours, lowest to highest, onto CAP 1.2 <severity>.
CAP_SEVERITY = {"blue": "Minor", "yellow": "Moderate", "orange": "Severe", "red": "Extreme"}
# How soon responders should act; CAP 1.2 <urgency>.
CAP_URGENCY = {"blue": "Future", "yellow": "Expected", "orange": "Immediate", "red": "Immediate"}


def rank(level: str) -> int:
    return LEVELS.index(level)


def higher(a: str, b: str) -> str:
    return a if rank(a) >= rank(b) else b
