"""A warning as OASIS CAP 1.2 messages, and current warnings as an Atom feed (RFC 4287). Pure: no I/O.

The messages are read off the warning's history, so no table holds them and
the same history always gives the same identifiers and times:

- the first event that makes the warning public (it opens active) is the
  ``Alert``;
- after it, every change of level or of certainty (CAP's core fields,
  recorded as events) is an ``Update``, and resolution is the ``Cancel``; each
  references every earlier message. Events recorded in one transaction (an
  escalation and the certainty change it brought) are one message.
- An acknowledgement is the EOC's own business and changes nothing a
  recipient reads, so it issues no message.
- The instruction (and the response types) come only from the recommendations
  the EOC accepted (``alerts.recommendation_log``: accepted, or accepted and
  since done); none accepted, no instruction. After the Alert, an operator's
  step that changes which of the warning's recommendations are accepted is an
  ``Update`` too: recipients must hear of a new instruction.

A document shows the latest message. Its fixed fields (type, times,
references, severity, urgency, certainty, instruction) are those of that
message; its description is the warning's current explanation, which gains
evidence between messages.
"""

from __future__ import annotations

import re
import uuid
import xml.etree.ElementTree as ET
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from shapely.geometry import MultiPolygon, Polygon

from alerts.recommendation_log import RecommendationStep
from alerts.schemas import WarningDetail, WarningEvent
from config.areas import Area
from config.catalog import SENSOR_FAULT

CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
ATOM_NS = "http://www.w3.org/2005/Atom"
CAP_MEDIA_TYPE = "application/cap+xml"
ATOM_MEDIA_TYPE = "application/atom+xml"
AREA_CODE = "citywarn-area"  # <geocode> valueName: the value is the area's id in areas.geojson
HAZARD_CODE = "citywarn-hazard"  # <eventCode> valueName
LEVEL_PARAMETER = "citywarn-level"  # <parameter> valueName: blue, yellow, orange or red
LANGUAGE = "en-US"  # headlines, explanations and playbooks are written in English

MsgType = Literal["Alert", "Update", "Cancel"]

# Hazard -> CAP <category> values and <event> text. CAP 1.2 files floods under Met ("Meteorological
# (inc. flood)"), so river floods and rain waterlogging are Met; a gas leak is a utility failure that
# endangers the public (Safety, Infra), not an attack (CBRNE); air quality is Health and Env.
HAZARDS: dict[str, tuple[tuple[str, ...], str]] = {
    "flood": (("Met",), "Flood"),
    "waterlogging": (("Met",), "Urban waterlogging"),
    "gas_leak": (("Safety", "Infra"), "Gas leak"),
    "fire": (("Fire",), "Fire"),
    "structural_damage": (("Safety", "Infra"), "Structural damage"),
    "public_health": (("Health", "Env"), "Public health hazard"),
    "power_outage": (("Infra",), "Power outage"),
    "traffic_accident": (("Transport",), "Traffic accident"),
    SENSOR_FAULT: (("Infra",), "Sensor fault"),
}

# The CAP <responseType> a playbook action asks for, by words in it; the first rule that matches wins,
# and an action no rule names is a pre-planned activity (Execute). Listed most protective first,
# which is also the order the values are given in.
RESPONSE_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("Evacuate", re.compile(r"\bevacuat|\bmove people out", re.I)),
    ("Avoid", re.compile(r"\bclose\b|\bcordon|\brestrict access|\breroute|\bdiversion", re.I)),
    ("Prepare", re.compile(r"\bprepare|\bpre-position", re.I)),
    ("Monitor", re.compile(r"\bwatch\b|\breview\b|\bmonitor", re.I)),
)
RESPONSE_ORDER = ("Evacuate", "Avoid", "Prepare", "Execute", "Monitor")

_PUBLIC_STATUSES = frozenset({"active", "acknowledged"})
_END = datetime.max.replace(tzinfo=UTC)  # after every step
_IN_FORCE = frozenset({"accepted", "done"})  # a recommendation's states that put it in the instruction
_URGENCY = frozenset({"Immediate", "Expected", "Future", "Past", "Unknown"})
_SEVERITY = frozenset({"Extreme", "Severe", "Moderate", "Minor", "Unknown"})
_CERTAINTY = frozenset({"Observed", "Likely", "Possible", "Unlikely", "Unknown"})
# Characters XML 1.0 cannot carry at all (C0 controls but tab, newline, return; lone surrogates; FFFE/F).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


class NotPublished(LookupError):
    """The warning has not been public yet (it never opened active), so it has no CAP message."""


Steps = Mapping[str, Sequence[RecommendationStep]]  # a warning's recommendation steps by rid, oldest first


@dataclass(frozen=True, slots=True)
class CapMessage:
    identifier: str
    sent: datetime  # UTC, whole seconds
    msg_type: MsgType
    accepted: frozenset[str] = frozenset()  # rids of the recommendations in its instruction

    def reference(self, sender: str) -> str:
        """The message's extended identifier, as CAP's <references> lists it."""
        return f"{sender},{self.identifier},{cap_time(self.sent)}"


@dataclass(frozen=True, slots=True)
class FeedItem:
    """One current warning for the feed, with where its CAP document is served."""

    warning: WarningDetail
    area: Area | None
    cap_url: str
    steps: Steps | None = None  # what operators did with its recommendations


def cap_time(at: datetime) -> str:
    """CAP's dateTime: whole seconds and an explicit offset ("+00:00": CAP forbids "Z")."""
    return at.astimezone(UTC).replace(microsecond=0).isoformat()


def cap_messages(warning: WarningDetail, steps: Steps | None = None) -> list[CapMessage]:
    """The warning's CAP messages, oldest first (the module's docstring says which events and
    recommendation steps make one)."""
    out: list[CapMessage] = []
    for at, events, accepted in _moments(warning, steps or {}):
        msg_type = _message_type(events, published=bool(out))
        if msg_type is None and out and accepted != out[-1].accepted:
            msg_type = "Update"
        if msg_type is not None:
            sent = at.astimezone(UTC).replace(microsecond=0)
            out.append(CapMessage(f"citywarn-{warning.id}-{len(out) + 1}", sent, msg_type, accepted))
        if msg_type == "Cancel":
            break
    return out


def _moments(
    warning: WarningDetail, steps: Steps
) -> list[tuple[datetime, list[WarningEvent], frozenset[str]]]:
    """The instants that may make a message: each transaction's events (consecutive events recorded at
    one ``now``), and each recommendation step at an instant of its own; with the rids of the warning's
    current recommendations accepted by then. A step at a transaction's instant goes with it."""
    current = {r.get("rid") for r in warning.recommendations}
    pending = deque(
        sorted((s.at, rid, s.state) for rid, hist in steps.items() if rid in current for s in hist)
    )
    states: dict[str, str] = {}
    out: list[tuple[datetime, list[WarningEvent], frozenset[str]]] = []
    for at, events in [*_by_transaction(warning.events), (_END, [])]:
        while pending and pending[0][0] < at:  # a step between transactions: an instant of its own
            step_at, rid, state = pending.popleft()
            states[rid] = state
            out.append((step_at, [], _accepted(states)))
        while pending and pending[0][0] == at:
            _, rid, state = pending.popleft()
            states[rid] = state
        if events:
            out.append((at, events, _accepted(states)))
    return out


def _accepted(states: Mapping[str, str]) -> frozenset[str]:
    return frozenset(rid for rid, state in states.items() if state in _IN_FORCE)


def _by_transaction(events: Sequence[WarningEvent]) -> list[tuple[datetime, list[WarningEvent]]]:
    """Consecutive events recorded at one instant (one transaction's ``now``) as one group."""
    groups: list[tuple[datetime, list[WarningEvent]]] = []
    for event in events:
        if groups and groups[-1][0] == event.at:
            groups[-1][1].append(event)
        else:
            groups.append((event.at, [event]))
    return groups


def _message_type(events: Sequence[WarningEvent], *, published: bool) -> MsgType | None:
    if not published:
        return "Alert" if any(e.to_status in _PUBLIC_STATUSES for e in events) else None
    if any(e.to_status == "resolved" for e in events):
        return "Cancel"
    changed = any(e.from_level is not None and e.to_level != e.from_level for e in events)
    return "Update" if changed or any(e.action == "certainty" for e in events) else None


def cap_alert(warning: WarningDetail, *, area: Area | None, sender: str, steps: Steps | None = None) -> bytes:
    """The warning's latest CAP 1.2 message as a UTF-8 XML document. ``NotPublished`` if it has none.

    ``steps``: what operators did with its recommendations (``RecommendationLog.history``).
    """
    messages = cap_messages(warning, steps)
    if not messages:
        raise NotPublished(warning.id)
    latest = messages[-1]
    alert = ET.Element(_cap("alert"))
    _add(alert, "identifier", latest.identifier)
    _add(alert, "sender", sender)
    _add(alert, "sent", cap_time(latest.sent))
    _add(alert, "status", "Exercise" if warning.exercise else "Actual")
    _add(alert, "msgType", latest.msg_type)
    if warning.hazard == SENSOR_FAULT:
        # A fault of our own sensor is for the maintenance team, not the public.
        _add(alert, "scope", "Restricted")
        _add(alert, "restriction", "Sensor maintenance: not for public release")
    else:
        _add(alert, "scope", "Public")
    if warning.exercise:
        _add(alert, "note", "Exercise (drill): not a real event. Take no action.")
    if len(messages) > 1:
        _add(alert, "references", " ".join(m.reference(sender) for m in messages[:-1]))
    _add(alert, "incidents", warning.id)
    _info(alert, warning, area, latest)
    return ET.tostring(alert, encoding="utf-8", xml_declaration=True, default_namespace=CAP_NS)


def _info(alert: ET.Element, warning: WarningDetail, area: Area | None, message: CapMessage) -> None:
    categories, event = hazard_terms(warning.hazard)
    ended = message.msg_type == "Cancel"
    info = _add(alert, "info")
    _add(info, "language", LANGUAGE)
    for category in categories:
        _add(info, "category", category)
    _add(info, "event", event)
    accepted = [r for r in warning.recommendations if r.get("rid") in message.accepted]
    for response in ["AllClear"] if ended else response_types(accepted):
        _add(info, "responseType", response)
    _add(info, "urgency", "Past" if ended else _one_of(_URGENCY, warning.urgency))
    _add(info, "severity", _one_of(_SEVERITY, warning.severity))
    _add(info, "certainty", _one_of(_CERTAINTY, warning.certainty))
    code = _add(info, "eventCode")
    _add(code, "valueName", HAZARD_CODE)
    _add(code, "value", warning.hazard)
    headline = _headline(warning, area)
    _add(info, "headline", f"Ended: {headline}" if ended else headline)
    description = _clean(warning.explanation)
    if ended:
        description = f"The warning ended at {cap_time(message.sent)}. {description}".strip()
    if description:
        _add(info, "description", description)
    instruction = "" if ended else instructions(accepted)
    if instruction:
        _add(info, "instruction", instruction)
    parameter = _add(info, "parameter")
    _add(parameter, "valueName", LEVEL_PARAMETER)
    _add(parameter, "value", warning.level)
    _area(info, warning.area, area)


def hazard_terms(hazard: str) -> tuple[tuple[str, ...], str]:
    """CAP categories and event text of a hazard; a hazard the table does not know is Other."""
    return HAZARDS.get(hazard, (("Other",), hazard.replace("_", " ").capitalize()))


def _headline(warning: WarningDetail, area: Area | None) -> str:
    """Level, event and the area's name: a place a reader knows, rather than the area's id."""
    place = area.name if area is not None else warning.area
    return f"{warning.level.capitalize()} {hazard_terms(warning.hazard)[1].lower()} warning for {place}"


def response_types(recommendations: Sequence[dict[str, Any]]) -> list[str]:
    """The CAP response types the recommendations ask for, most protective first; none without any."""
    found = set()
    for r in recommendations:
        what = str(r.get("what", ""))
        found.add(next((name for name, rule in RESPONSE_RULES if rule.search(what)), "Execute"))
    return [name for name in RESPONSE_ORDER if name in found]


def instructions(recommendations: Sequence[dict[str, Any]]) -> str:
    """One numbered line per recommendation given (the accepted ones), in the warning's own order:
    what, who, and by when."""
    lines = []
    for i, r in enumerate(recommendations, 1):
        who, by = r.get("who"), _deadline(r.get("by"))
        tail = "; ".join(p for p in (str(who) if who else "", f"by {by}" if by else "") if p)
        lines.append(f"{i}. {r.get('what', '')}" + (f" ({tail})" if tail else ""))
    return _clean("\n".join(lines))


def _deadline(by: object) -> str:
    if not isinstance(by, str) or not by:
        return ""
    try:
        return cap_time(datetime.fromisoformat(by))
    except ValueError:
        return by


def _area(info: ET.Element, area_id: str, area: Area | None) -> None:
    element = _add(info, "area")
    _add(element, "areaDesc", area.name if area is not None else area_id)
    for ring in polygons(area) if area is not None else []:
        _add(element, "polygon", ring)
    geocode = _add(element, "geocode")
    _add(geocode, "valueName", AREA_CODE)
    _add(geocode, "value", area_id)


def polygons(area: Area) -> list[str]:
    """The area's outer rings as CAP polygons: closed, "lat,lon" pairs (WGS 84) separated by spaces.

    CAP has no holes: a hole in an area is inside its CAP polygon (the message reaches a little more).
    """
    parts = area.geometry.geoms if isinstance(area.geometry, MultiPolygon) else [area.geometry]
    out = []
    for part in parts:
        assert isinstance(part, Polygon)
        ring = [f"{_degrees(lat)},{_degrees(lon)}" for lon, lat, *_ in part.exterior.coords]
        if ring and ring[0] != ring[-1]:
            ring.append(ring[0])
        if len(ring) >= 4:
            out.append(" ".join(ring))
    return out


def _degrees(value: float) -> str:
    """Decimal degrees to six places (about 0.1 m), never in exponent form."""
    return f"{value:.6f}".rstrip("0").rstrip(".")


# ---- the Atom feed ----------------------------------------------------------------------------------


def atom_feed(
    items: Sequence[FeedItem], *, sender: str, self_url: str, exercise: bool, now: datetime
) -> bytes:
    """An Atom feed with one entry per warning (its latest CAP message), linking to its CAP document.

    Feed and entry ids are name-based UUIDs of the sender and the feed's kind or the message's
    identifier, so they stay the same wherever the service is reached from.
    """
    # Names without a namespace and the Atom namespace declared as the default: ElementTree's
    # default_namespace refuses the attributes (rel, href) that have none.
    feed = ET.Element("feed", xmlns=ATOM_NS)
    kind = "current warnings and exercises" if exercise else "current warnings"
    _atom_add(feed, "id", _urn(f"{sender} cap feed: {kind}"))
    _atom_add(feed, "title", f"citywarn: {kind}")
    _atom_add(feed, "updated", cap_time(now))
    author = _atom_add(feed, "author")
    _atom_add(author, "name", sender)
    ET.SubElement(feed, "link", rel="self", type=ATOM_MEDIA_TYPE, href=self_url)
    for item in items:
        messages = cap_messages(item.warning, item.steps)
        if messages:
            _entry(feed, item, messages, sender)
    return ET.tostring(feed, encoding="utf-8", xml_declaration=True)


def _entry(feed: ET.Element, item: FeedItem, messages: Sequence[CapMessage], sender: str) -> None:
    w, latest = item.warning, messages[-1]
    categories = hazard_terms(w.hazard)[0]
    entry = _atom_add(feed, "entry")
    _atom_add(entry, "id", _urn(latest.reference(sender)))
    drill = "[Exercise] " if w.exercise else ""
    _atom_add(entry, "title", drill + _headline(w, item.area))
    _atom_add(entry, "published", cap_time(messages[0].sent))
    _atom_add(entry, "updated", cap_time(latest.sent))
    ET.SubElement(entry, "link", rel="alternate", type=CAP_MEDIA_TYPE, href=item.cap_url)
    for term in (w.hazard, *categories, *(["exercise"] if w.exercise else [])):
        ET.SubElement(entry, "category", term=term)
    summary = f"{latest.msg_type}: {w.severity}, {w.urgency}, {w.certainty}. {_clean(w.explanation)}"
    _atom_add(entry, "summary", summary.strip())


def _urn(name: str) -> str:
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, name)}"


# ---- XML helpers ------------------------------------------------------------------------------------


def _cap(tag: str) -> str:
    return f"{{{CAP_NS}}}{tag}"


def _add(parent: ET.Element, tag: str, value: str | None = None) -> ET.Element:
    child = ET.SubElement(parent, _cap(tag))
    if value is not None:
        child.text = _clean(value)
    return child


def _atom_add(parent: ET.Element, tag: str, value: str | None = None) -> ET.Element:
    child = ET.SubElement(parent, tag)
    if value is not None:
        child.text = _clean(value)
    return child


def _clean(value: str) -> str:
    """Text XML can carry: characters XML 1.0 forbids are dropped (ElementTree escapes the rest)."""
    return _NOT_XML.sub("", value)


def _one_of(allowed: frozenset[str], value: str) -> str:
    """CAP's enumerations are closed: a value outside one is "Unknown", never an invalid document."""
    return value if value in allowed else "Unknown"
