"""Cross-item checks inside one config file, reported where they are found.

A model-level validator only knows "this file is wrong"; the check wants every
offending item and field. So such validators hand back ``(where, message)``
pairs: ``citywarn check`` passes a list in the validation context to collect
them all, while a plain load raises them as one error, as before.
"""

from __future__ import annotations

from pydantic import ValidationInfo

Located = tuple[str, str]  # (item and field, e.g. "sensors[wl-01].kind", message)


def collect_or_raise(problems: list[Located], info: ValidationInfo) -> None:
    """Add to the context's ``problems`` list if the caller gave one, else raise them together."""
    sink = info.context.get("problems") if isinstance(info.context, dict) else None
    if sink is not None:
        sink.extend(problems)
    elif problems:
        raise ValueError("; ".join(f"{where}: {message}" for where, message in problems))
