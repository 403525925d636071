"""The hazard taxonomy of human reports: categories, their hazards, keywords and priors.

Kept as a YAML file the city edits (``config/city/taxonomy.yaml``) and
validated on load, like the sensor catalog. It serves two callers:

- ingest, which needs a category for a report that came without one
  (``infer``: keyword rules, deterministic, so a replay infers the same);
- report-burst detection, which needs to know how many reports of a category
  a grid normally gets in an hour (``expected_rate``) before it has learned
  that grid's own habits, and which hazard a burst is evidence for.

Keyword matching: English keywords match case-insensitively on word
boundaries (ASCII letters and digits bound a word, so ``gas`` matches in
"燃气gas泄漏" but not in "gasoline"); Chinese keywords match as substrings. Text
is NFKC-normalised first, so full-width Latin letters match too. A match lying
inside a longer match of another keyword is dropped ("flooded" inside
"flooded street"), each category scores the summed weight of its distinct
surviving keywords, and a keyword weighs its length with a CJK character
counting three (about one English syllable's worth of meaning per character).
Ties go to the larger single keyword, then to the category listed first.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from config.problems import Located, collect_or_raise
from config.yaml_docs import load_yaml

TAXONOMY_PATH = Path(__file__).parent / "city" / "taxonomy.yaml"
FALLBACK_CATEGORY = "other"
HOURS = 24
CJK_WEIGHT = 3

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def _normalise(text: str) -> str:
    """NFKC (full-width letters to ASCII), case-folded, whitespace runs collapsed to one space."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def keyword_weight(keyword: str) -> int:
    """Longer keywords are more specific; a CJK character carries about three letters' worth."""
    return sum(CJK_WEIGHT if _CJK.match(ch) else 1 for ch in keyword if not ch.isspace())


class Keywords(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    en: tuple[str, ...] = ()
    zh: tuple[str, ...] = ()

    @field_validator("en")
    @classmethod
    def _english(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for k in v:
            if not k.strip() or _CJK.search(k):
                raise ValueError(f"English keyword {k!r} is empty or contains Chinese characters")
        return tuple(_normalise(k) for k in v)

    @field_validator("zh")
    @classmethod
    def _chinese(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for k in v:
            if not _CJK.search(k):
                raise ValueError(f"Chinese keyword {k!r} contains no Chinese characters")
        return tuple(_normalise(k) for k in v)


class Category(BaseModel):
    """One report category: names, the hazard it is evidence for, keywords, and its prior rate."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    name_zh: str = Field(min_length=1)
    hazard: str = Field(min_length=1, pattern=r"^[a-z][a-z0-9_]*$")
    rate_per_grid_hour: float = Field(gt=0, allow_inf_nan=False)
    hour_profile: tuple[float, ...] | None = None
    keywords: Keywords = Keywords()
    description: str = ""
    _rates: tuple[float, ...] = PrivateAttr(default=())

    @field_validator("hour_profile")
    @classmethod
    def _profile(cls, v: tuple[float, ...] | None) -> tuple[float, ...] | None:
        if v is None:
            return v
        if len(v) != HOURS:
            raise ValueError(f"hour_profile needs {HOURS} values (local hours 0..23), got {len(v)}")
        if not all(math.isfinite(x) and x > 0 for x in v):
            raise ValueError("hour_profile values must be finite and above 0")
        return v

    def model_post_init(self, context: object) -> None:
        shape = self.hour_profile or (1.0,) * HOURS
        mean = sum(shape) / HOURS
        self._rates = tuple(self.rate_per_grid_hour * x / mean for x in shape)

    def rate_at(self, hour: int) -> float:
        """Prior reports per grid per hour at this local hour (the profile rescaled to mean 1)."""
        return self._rates[hour % HOURS]


@dataclass(frozen=True, slots=True)
class _Matcher:
    category: str
    keyword: str
    weight: int
    pattern: re.Pattern[str] | None  # None: a Chinese keyword, matched as a substring

    def spans(self, text: str) -> list[tuple[int, int]]:
        if self.keyword not in text:  # cheap pre-check: most keywords are absent
            return []
        if self.pattern is not None:
            return [m.span() for m in self.pattern.finditer(text)]
        out: list[tuple[int, int]] = []
        start = text.find(self.keyword)
        while start >= 0:
            out.append((start, start + len(self.keyword)))
            start = text.find(self.keyword, start + 1)
        return out


def _english_pattern(keyword: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![a-z0-9]){re.escape(keyword)}(?![a-z0-9])")


class Taxonomy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Local time of the hour profiles (and of the detectors' hour-of-day learning).
    utc_offset_hours: float = Field(default=8.0, ge=-12, le=14, allow_inf_nan=False)
    categories: dict[str, Category]
    _matchers: tuple[_Matcher, ...] = PrivateAttr(default=())
    _order: dict[str, int] = PrivateAttr(default_factory=dict)

    @field_validator("categories")
    @classmethod
    def _ids(cls, v: dict[str, Category]) -> dict[str, Category]:
        for cid in v:
            if not re.fullmatch(r"[a-z][a-z0-9_]*", cid):
                raise ValueError(f"category id {cid!r} must be lower_snake_case")
        if FALLBACK_CATEGORY not in v:
            raise ValueError(f"the taxonomy needs the fallback category {FALLBACK_CATEGORY!r}")
        return v

    @model_validator(mode="after")
    def _keywords_unique(self, info: ValidationInfo) -> Taxonomy:
        owner: dict[str, str] = {}
        problems: list[Located] = []
        for cid, cat in self.categories.items():
            for k in (*cat.keywords.en, *cat.keywords.zh):
                if k in owner and owner[k] != cid:
                    problems.append(
                        (
                            f"categories[{cid}].keywords",
                            f"{k!r} is in both categories[{owner[k]}] and [{cid}]",
                        )
                    )
                owner.setdefault(k, cid)
        collect_or_raise(problems, info)
        return self

    def hazards(self) -> set[str]:
        """Every hazard some report category is evidence for: the city's list of hazards."""
        return {c.hazard for c in self.categories.values()}

    def model_post_init(self, context: object) -> None:
        self._order = {cid: i for i, cid in enumerate(self.categories)}
        self._matchers = tuple(
            _Matcher(cid, k, keyword_weight(k), _english_pattern(k) if lang == "en" else None)
            for cid, cat in self.categories.items()
            for lang, words in (("en", cat.keywords.en), ("zh", cat.keywords.zh))
            for k in dict.fromkeys(words)
        )

    def hazard_of(self, category: str) -> str:
        """The hazard id a report of this category is evidence for. KeyError if unknown."""
        try:
            return self.categories[category].hazard
        except KeyError:
            raise KeyError(f"unknown report category {category!r}") from None

    def expected_rate(self, category: str, hour: int) -> float:
        """Prior reports of this category per grid per hour at this local hour. KeyError if unknown."""
        try:
            return self.categories[category].rate_at(hour)
        except KeyError:
            raise KeyError(f"unknown report category {category!r}") from None

    def scores(self, text: str) -> dict[str, int]:
        """Keyword weight per matching category (see module docs); empty when nothing matches."""
        return {cid: total for cid, (total, _) in self._tally(text).items()}

    def infer(self, text: str) -> str | None:
        """The category whose keywords match best, or None if no keyword matches."""
        tally = self._tally(text)
        if not tally:
            return None
        return min(tally, key=lambda cid: (-tally[cid][0], -tally[cid][1], self._order[cid]))

    def _tally(self, text: str) -> dict[str, tuple[int, int]]:
        """Per category: (summed weight of distinct surviving keywords, largest keyword weight)."""
        norm = _normalise(text)
        hits = [(s, e, m) for m in self._matchers for s, e in m.spans(norm)]
        surviving: dict[str, set[_Matcher]] = {}
        for s, e, m in hits:
            inside_longer = any(s2 <= s and e <= e2 and (e2 - s2) > (e - s) for s2, e2, _ in hits)
            if not inside_longer:
                surviving.setdefault(m.category, set()).add(m)
        return {cid: (sum(m.weight for m in ms), max(m.weight for m in ms)) for cid, ms in surviving.items()}


def load_taxonomy(path: Path = TAXONOMY_PATH) -> Taxonomy:
    """Load and validate a taxonomy (default: the bundled demo city's)."""
    with path.open(encoding="utf-8") as f:
        return Taxonomy.model_validate(load_yaml(f))
