"""Our line-protocol builder against influxdb-client's, which is the reference for escaping.

We format lines ourselves for speed (see store/line_protocol.py); this keeps
the two in agreement on every tag and float the schema admits. Backslashes are
excluded on purpose: InfluxDB 1.x stores a doubled one literally, ingest's
identifier pattern refuses them, and our builder leaves them alone.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from influxdb_client import Point as ReferencePoint
from influxdb_client import WritePrecision

from store.line_protocol import MEASUREMENT, to_lines
from store.schemas import Point

_tag = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\\"), min_size=1, max_size=30
).filter(lambda s: s.strip() == s and s != "")
_value = st.floats(allow_nan=False, allow_infinity=False)
_ts = st.integers(min_value=-(2**62), max_value=2**62)


@given(sensor_id=_tag, kind=_tag, area=_tag, value=_value, ts_ns=_ts)
def test_line_matches_influxdb_client(sensor_id: str, kind: str, area: str, value: float, ts_ns: int) -> None:
    ours = to_lines([Point(sensor_id=sensor_id, kind=kind, area=area, value=value, ts_ns=ts_ns)])
    reference = (
        ReferencePoint(MEASUREMENT)
        .tag("sensor_id", sensor_id)
        .tag("kind", kind)
        .tag("area", area)
        .field("value", value)
        .time(ts_ns, WritePrecision.NS)
        .to_line_protocol()
    )
    # The series key and timestamp must match byte for byte; the float may be spelled
    # differently ("0" against "0.0") as long as it parses to the same value.
    our_key, our_field, our_ts = ours.rsplit(" ", 2)
    ref_key, ref_field, ref_ts = reference.rsplit(" ", 2)
    assert (our_key, our_ts) == (ref_key, ref_ts)
    assert float(our_field.removeprefix("value=")) == float(ref_field.removeprefix("value="))


def test_special_characters_are_escaped() -> None:
    line = to_lines([Point(sensor_id="a b", kind="k=1", area="x,y", value=1.5, ts_ns=7)])
    assert line == "reading,area=x\\,y,kind=k\\=1,sensor_id=a\\ b value=1.5 7"
