"""The README's table of settings, generated from ``Settings`` so it cannot drift.

``python -m config.settings_doc`` prints the table; ``--write README.md``
replaces the text between the two markers in that file. A test fails when the
README's table differs from what this prints.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pydantic.fields import FieldInfo

from config.settings import Settings, env_var

START_MARKER = "<!-- settings:start -->"
END_MARKER = "<!-- settings:end -->"
# Bundled files are shown relative to the source tree, not as this machine's absolute path.
_SOURCE_ROOT = Path(__file__).resolve().parent.parent

_BOUNDS = (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<"))


def _type(field: FieldInfo) -> str:
    """The annotation's name with pydantic's bounds, e.g. ``int ≥ 1, ≤ 100_000``."""
    name = getattr(field.annotation, "__name__", str(field.annotation))
    bounds = [
        f"{symbol} {_number(getattr(m, attr))}"
        for m in field.metadata
        for attr, symbol in _BOUNDS
        if hasattr(m, attr)
    ]
    return f"{name} {', '.join(bounds)}" if bounds else name


def _number(value: Any) -> str:
    return f"{value:_}" if isinstance(value, int) else f"{value:g}"


def _default(value: Any) -> str:
    if isinstance(value, Path) and value.is_relative_to(_SOURCE_ROOT):
        value = value.relative_to(_SOURCE_ROOT)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        return f"`{_number(value)}`"
    text = str(value).lower() if isinstance(value, bool) else str(value)
    return f"`{text}`" if text else "(empty)"


def settings_table() -> str:
    """A Markdown table: environment variable, type with bounds, default, description."""
    rows = [
        "| variable | type | default | description |",
        "| --- | --- | --- | --- |",
    ]
    for name, field in Settings.model_fields.items():
        description = (field.description or "").replace("|", "\\|")
        rows.append(f"| `{env_var(name)}` | {_type(field)} | {_default(field.default)} | {description} |")
    return "\n".join(rows) + "\n"


def replace_table(text: str, table: str) -> str:
    """``text`` with the part between the markers replaced by ``table``."""
    start = text.index(START_MARKER) + len(START_MARKER)
    end = text.index(END_MARKER)
    return f"{text[:start]}\n{table}{text[end:]}"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m config.settings_doc", description=__doc__)
    parser.add_argument("--write", type=Path, metavar="FILE", help="replace the table between the markers")
    args = parser.parse_args()
    if args.write is None:
        print(settings_table(), end="")
        return
    args.write.write_text(replace_table(args.write.read_text(encoding="utf-8"), settings_table()), "utf-8")


if __name__ == "__main__":
    main()
