"""Where a sampled process spent its time: top functions from py-spy's collapsed stacks (``--format raw``).

Each line of the file is one distinct stack, root first, frames joined by
``;``, then its sample count. A function's *self* samples are those where it
is the innermost frame; its *cumulative* samples are those where it is
anywhere on the stack (counted once per stack, so recursion is not counted
twice). Frames are named ``function (file)``: the line numbers py-spy adds
are dropped so a function's samples add up.

Run: ``python -m bench.collapsed_stacks PATH [--top 10]``.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

_LINE = re.compile(r"^(?P<stack>.*) (?P<count>\d+)$")
_FRAME_LINE = re.compile(r":\d+\)$")
_LABEL = re.compile(r"^(process \d+|thread \()")


@dataclass(frozen=True)
class Profile:
    samples: int
    self_samples: Counter[str]
    cumulative: Counter[str]

    def top(self, counter: Counter[str], n: int) -> list[tuple[str, int, float]]:
        return [(name, count, 100.0 * count / self.samples) for name, count in counter.most_common(n)]


def frame_name(frame: str) -> str:
    return _FRAME_LINE.sub(")", frame.strip())


def read_collapsed(path: Path) -> Profile:
    samples, self_samples, cumulative = 0, Counter[str](), Counter[str]()
    for line in path.read_text(errors="replace").splitlines():
        match = _LINE.match(line.strip())
        if match is None:
            continue
        count = int(match["count"])
        # py-spy may open a stack with labels (``process 123:"python ..."``, ``thread (0x..)``): not code.
        frames = [frame_name(f) for f in match["stack"].split(";") if f and not _LABEL.match(f)]
        if not frames:
            continue
        samples += count
        self_samples[frames[-1]] += count
        for name in set(frames):
            cumulative[name] += count
    return Profile(samples, self_samples, cumulative)


def summary(profile: Profile, n: int = 10) -> str:
    lines = [f"{profile.samples} samples"]
    for title, counter in (("cumulative", profile.cumulative), ("self", profile.self_samples)):
        lines.append(f"top {n} by {title} time:")
        lines += [f"  {pct:5.1f}%  {count:7d}  {name}" for name, count, pct in profile.top(counter, n)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("path", type=Path)
    parser.add_argument("--top", type=int, default=10)
    args = parser.parse_args()
    print(summary(read_collapsed(args.path), args.top))


if __name__ == "__main__":
    main()
