"""YAML documents parsed by libyaml when PyYAML has it, as its wheels do.

A city's sensor catalog runs to tens of thousands of entries, and every process
reads it at start. On bench.pipeline's 10,000-sensor catalog PyYAML's pure-Python
parser took 2.26 s and its C binding 0.51 s, giving the same document; errors are
the same classes with the same marks (tests/test_config_check.py).
"""

from __future__ import annotations

from typing import IO, Any

import yaml

SAFE_LOADER: type[yaml.SafeLoader] | type[yaml.CSafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(source: str | IO[str]) -> Any:
    """The document in ``source``, with only plain YAML types (no object tags), as ``yaml.safe_load``."""
    return yaml.load(source, Loader=SAFE_LOADER)
