# Chinese report texts use full-width commas, and one test feeds full-width Latin letters on purpose.
# ruff: noqa: RUF001
"""The report taxonomy: validated on load, realistic priors, keyword inference in English and Chinese."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from config.areas import load_areas
from config.catalog import load_catalog
from config.settings import CITY_DIR
from config.taxonomy import Taxonomy, keyword_weight, load_taxonomy
from demo.city import _BACKGROUND, demo_reports

TAXONOMY = load_taxonomy()
IDS = {
    "flood", "waterlogging", "fire", "gas_leak", "structural_damage",
    "traffic_accident", "power_outage", "public_health", "other",
}  # fmt: skip


def small(categories: dict[str, dict[str, Any]]) -> Taxonomy:
    base = {"name": "X", "name_zh": "某", "hazard": "other", "rate_per_grid_hour": 0.1}
    cats = {cid: {**base, **spec} for cid, spec in categories.items()}
    cats.setdefault("other", dict(base))
    return Taxonomy.model_validate({"categories": cats})


def test_bundled_taxonomy_has_the_agreed_categories_and_the_sensor_hazards() -> None:
    assert set(TAXONOMY.categories) == IDS
    sensor_hazards = {k.hazard for k in load_catalog(CITY_DIR / "sensors.yaml").kinds.values()}
    for cid in IDS - {"other"}:
        assert TAXONOMY.hazard_of(cid) == cid
        assert cid in sensor_hazards
    assert TAXONOMY.hazard_of("other") == "other"
    with pytest.raises(KeyError):
        TAXONOMY.hazard_of("volcano")


def test_priors_are_rates_per_grid_hour_with_a_daily_shape() -> None:
    for cid, cat in TAXONOMY.categories.items():
        daily = sum(TAXONOMY.expected_rate(cid, h) for h in range(24)) / 24
        assert daily == pytest.approx(cat.rate_per_grid_hour)
    traffic = [TAXONOMY.expected_rate("traffic_accident", h) for h in range(24)]
    gas = [TAXONOMY.expected_rate("gas_leak", h) for h in range(24)]
    assert all(t > 10 * g for t, g in zip(traffic, gas, strict=True))
    assert traffic[8] > 2 * traffic[14] and traffic[18] > 2 * traffic[14] and traffic[3] < traffic[14] / 3
    assert TAXONOMY.expected_rate("flood", 3) == TAXONOMY.expected_rate("flood", 15)  # rain keeps no clock


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("Strong smell of gas in the stairwell", "gas_leak"),
        ("SMELL OF GAS near the market", "gas_leak"),
        ("Kitchen on fire, thick black smoke from the 6th floor", "fire"),
        ("Flooded street outside the school, standing water everywhere", "waterlogging"),
        ("The river is flooding over the embankment", "flood"),
        ("Big crack in the wall of the old building, plaster falling", "structural_damage"),
        ("Whole block has no electricity since 7pm, power cut", "power_outage"),
        ("Several children vomiting after lunch, food poisoning?", "public_health"),
        ("Car crash at the crossroads, two cars collided", "traffic_accident"),
        ("Construction noise at 2am again", "other"),
    ],
)
def test_infer_english(text: str, category: str) -> None:
    assert TAXONOMY.infer(text) == category


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("燃气泄漏，闻到很重的煤气味", "gas_leak"),
        ("楼道里有天然气异味", "gas_leak"),
        ("三楼厨房着火了，浓烟很大", "fire"),
        ("小区门口积水很深，车都熄火了", "waterlogging"),
        ("地下车库被淹了", "waterlogging"),
        ("江水上涨很快，快漫堤了", "flood"),
        ("老房子墙体开裂，担心倒塌", "structural_damage"),
        ("整栋楼停电了，变压器冒火花", "power_outage"),
        ("食堂多人腹泻呕吐", "public_health"),
        ("路口两车追尾", "traffic_accident"),
        ("广场舞噪音扰民", "other"),
    ],
)
def test_infer_chinese(text: str, category: str) -> None:
    assert TAXONOMY.infer(text) == category


def test_infer_mixed_language_width_and_word_boundaries() -> None:
    assert TAXONOMY.infer("Street flooding, water over the kerb 路面积水") == "waterlogging"
    assert TAXONOMY.infer("燃气leak, 楼下") == "gas_leak"  # CJK next to Latin is a word boundary
    assert TAXONOMY.infer("ＧＡＳ ＬＥＡＫ") == "gas_leak"  # full-width letters
    assert TAXONOMY.infer("Gasoline prices are up") is None  # "gas" is not a word here
    assert TAXONOMY.infer("Riverside Garden residents meeting tonight") is None
    assert TAXONOMY.infer("Flooded\n   STREET by the school") == "waterlogging"  # whitespace runs: one space


def test_specific_keywords_outweigh_the_generic_ones_inside_them() -> None:
    assert TAXONOMY.infer("flooded") == "flood"
    assert TAXONOMY.infer("flooded street") == "waterlogging"
    assert TAXONOMY.scores("flooded street") == {"waterlogging": keyword_weight("flooded street")}
    assert keyword_weight("煤气") == 6 and keyword_weight("smell of gas") == 10


def test_no_match_gives_none() -> None:
    for text in ("", "   ", "Bus 12 running late again", "今天天气不错", "12345"):
        assert TAXONOMY.infer(text) is None


def test_ties_go_to_the_larger_keyword_then_to_the_category_listed_first() -> None:
    assert (keyword_weight("boom"), keyword_weight("boomer"), keyword_weight("哗啦")) == (4, 6, 6)
    heavier = small({"alpha": {"keywords": {"en": ["boom"]}}, "beta": {"keywords": {"zh": ["哗啦"]}}})
    assert heavier.infer("boom 哗啦") == "beta"
    # Equal sums (2 + 2 against 4): the single larger keyword wins even when listed later.
    split = small({"gamma": {"keywords": {"en": ["ab", "cd"]}}, "delta": {"keywords": {"en": ["wxyz"]}}})
    assert split.scores("ab cd wxyz") == {"gamma": 4, "delta": 4}
    assert split.infer("ab cd wxyz") == "delta"
    # Equal in every way: the category listed first.
    alpha_first = small({"alpha": {"keywords": {"en": ["boomer"]}}, "beta": {"keywords": {"zh": ["哗啦"]}}})
    beta_first = small({"beta": {"keywords": {"zh": ["哗啦"]}}, "alpha": {"keywords": {"en": ["boomer"]}}})
    assert alpha_first.infer("boomer 哗啦") == "alpha"
    assert beta_first.infer("哗啦 boomer") == "beta"


def test_demo_reports_with_a_category_infer_that_category() -> None:
    reports = demo_reports(end=datetime(2024, 7, 15, 12, 0, tzinfo=UTC))
    labelled = [r for r in reports if r["category"] is not None]
    agree = [r for r in labelled if TAXONOMY.infer(str(r["text"])) == r["category"]]
    assert len(labelled) >= 30
    assert [r["text"] for r in labelled if r not in agree] == []
    # Every background template, with every grid's English and Chinese name.
    for category, template in _BACKGROUND:
        for grid in load_areas().grids():
            text = template.format(name=grid.name, zh=grid.name_zh or grid.name)
            if category is not None:
                assert TAXONOMY.infer(text) == category, text


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"gas_leak": {"keywords": {"en": ["gas"]}}, "fire": {"keywords": {"en": ["gas"]}}}, "both"),
        ({"gas_leak": {"hour_profile": [1.0] * 23}}, "24 values"),
        ({"gas_leak": {"hour_profile": [1.0] * 23 + [0.0]}}, "above 0"),
        ({"gas_leak": {"keywords": {"zh": ["gas"]}}}, "no Chinese"),
        ({"gas_leak": {"keywords": {"en": ["煤气"]}}}, "Chinese characters"),
        ({"gas_leak": {"rate_per_grid_hour": 0}}, "greater than 0"),
        ({"gas_leak": {"rate_per_grid_hour": float("nan")}}, "finite"),
        ({"Gas Leak": {}}, "lower_snake_case"),
    ],
)
def test_invalid_taxonomies_fail_on_load(change: dict[str, dict[str, Any]], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        small(change)


def test_the_fallback_category_is_required() -> None:
    with pytest.raises(ValidationError, match="fallback"):
        Taxonomy.model_validate(
            {
                "categories": {
                    "fire": {"name": "Fire", "name_zh": "火灾", "hazard": "fire", "rate_per_grid_hour": 0.01}
                }
            }
        )
