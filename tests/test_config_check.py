"""`citywarn check`, and the same check before every start: one located line per error, exit 2."""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

import pytest
import yaml

from app.cli import main
from config.settings import CITY_DIR, Settings
from config.settings_doc import END_MARKER, START_MARKER, settings_table
from ingest.broker import EmbeddedBroker

README = Path(__file__).resolve().parent.parent / "README.md"
STARTS = ["run", "serve", "ingest", "train", "migrate"]


@pytest.fixture
def city(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the bundled city, wired in through the environment, with state kept in tmp_path."""
    copy = tmp_path / "city"
    shutil.copytree(CITY_DIR, copy)
    for var, name in [
        ("CATALOG_PATH", "sensors.yaml"),
        ("PLAYBOOKS_PATH", "playbooks.yaml"),
        ("AREAS_PATH", "areas.geojson"),
        ("TAXONOMY_PATH", "taxonomy.yaml"),
        ("ASSETS_PATH", "assets.yaml"),
    ]:
        monkeypatch.setenv(f"CITYWARN_{var}", str(copy / name))
    monkeypatch.setenv("CITYWARN_DATABASE_URL", f"sqlite:///{tmp_path}/var/state.sqlite3")
    monkeypatch.setenv("CITYWARN_STORE_URL", f"file://{tmp_path}/var/store.sqlite3")
    return copy


def edit(path: Path, old: str, new: str, count: int = 1) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count(old) >= count, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, count), encoding="utf-8")


def check_lines(capsys: pytest.CaptureFixture[str], argv: list[str]) -> list[str]:
    """Run the CLI, expect exit 2, and return the error lines it printed on stderr."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err.splitlines()


def test_the_bundled_city_passes_with_a_summary(city: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["check"])  # returns: exit code 0
    out = capsys.readouterr().out
    assert re.search(r"41 sensors .*9 kinds", out), out
    assert "31 areas" in out


def test_a_sensor_in_an_unknown_area_is_named_by_file_item_and_field(
    city: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit(city / "sensors.yaml", "area: g-riverside-01,", "area: nowhere,")
    assert check_lines(capsys, ["check"]) == [
        f"{city}/sensors.yaml: sensors[wl-riverside-01].area: 'nowhere' is not an area in areas.geojson"
    ]


def test_a_hazard_without_a_playbook_is_an_error_for_every_kind_and_category_raising_it(
    city: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit(city / "playbooks.yaml", "  fire:\n", "  wildfire:\n")
    lines = check_lines(capsys, ["check"])
    assert sorted(lines) == [
        f"{city}/playbooks.yaml: hazards[wildfire]: no sensor kind or report category raises 'wildfire'",
        f"{city}/sensors.yaml: kinds[smoke].hazard: 'fire' has no playbook in playbooks.yaml",
        f"{city}/sensors.yaml: kinds[temperature].hazard: 'fire' has no playbook in playbooks.yaml",
        f"{city}/taxonomy.yaml: categories[fire].hazard: 'fire' has no playbook in playbooks.yaml",
    ]


def test_a_kind_must_raise_a_hazard_of_the_taxonomy(city: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit(city / "sensors.yaml", "hazard: power_outage", "hazard: blackout")
    assert check_lines(capsys, ["check"]) == [
        f"{city}/sensors.yaml: kinds[power_load].hazard: 'blackout' is not a hazard in taxonomy.yaml",
        f"{city}/sensors.yaml: kinds[power_load].hazard: 'blackout' has no playbook in playbooks.yaml",
    ]


def test_errors_in_several_files_are_all_reported_one_line_each(
    city: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit(city / "sensors.yaml", "lat: 30.578204", "lat: 300.578204")
    edit(city / "playbooks.yaml", "    orange:\n", "    amber:\n")
    edit(city / "taxonomy.yaml", "rate_per_grid_hour: 0.004", "rate_per_grid_hour: -1")
    lines = check_lines(capsys, ["check"])
    assert lines == [
        f"{city}/sensors.yaml: sensors[wl-riverside-01].lat: "
        "Input should be less than or equal to 90 (got 300.578204)",
        f"{city}/playbooks.yaml: hazards[flood].amber: "
        "Input should be 'blue', 'yellow', 'orange' or 'red' (got 'amber')",
        f"{city}/taxonomy.yaml: categories[gas_leak].rate_per_grid_hour: "
        "Input should be greater than 0 (got -1)",
    ]


def test_an_unknown_kind_and_a_duplicate_sensor_are_located(
    city: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit(city / "sensors.yaml", "id: wl-riverside-01, kind: water_level", "id: wl-riverside-01, kind: stage")
    edit(city / "sensors.yaml", "id: wl-riverside-02,", "id: wl-riverside-01,")
    assert check_lines(capsys, ["check"]) == [
        f"{city}/sensors.yaml: sensors[wl-riverside-01].kind: 'stage' is not a kind in kinds",
        f"{city}/sensors.yaml: sensors[wl-riverside-01].id: appears twice (items 1 and 2)",
    ]


def test_a_sensor_outside_its_area_is_located(city: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit(city / "sensors.yaml", "area: g-riverside-01,", "area: g-northport-01,")
    [line] = check_lines(capsys, ["check"])
    assert line.startswith(f"{city}/sensors.yaml: sensors[wl-riverside-01].lat/lon: ")
    assert "g-northport-01" in line


def test_unparseable_and_missing_files_name_the_file(city: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit(city / "taxonomy.yaml", "categories:", "categories: [")
    (city / "areas.geojson").unlink()
    lines = check_lines(capsys, ["check"])
    assert len(lines) == 2
    assert lines[0] == f"{city}/areas.geojson: cannot read: no such file"
    assert lines[1].startswith(f"{city}/taxonomy.yaml: line ")


def test_a_bad_environment_value_names_the_variable(city: Path, capsys: pytest.CaptureFixture[str]) -> None:
    monkey = pytest.MonkeyPatch()
    try:
        monkey.setenv("CITYWARN_TOPIC_PARTITIONS", "0")
        monkey.setenv("CITYWARN_STORE_URL", "redis://x")
        lines = check_lines(capsys, ["check"])
    finally:
        monkey.undo()
    assert lines == [
        "environment: CITYWARN_TOPIC_PARTITIONS: Input should be greater than or equal to 1 (got '0')",
        "environment: CITYWARN_STORE_URL: Value error, store_url must start with influxdb:// or file:// "
        "(got 'redis://x')",
    ]


def test_an_unknown_detector_is_a_settings_error(city: Path, capsys: pytest.CaptureFixture[str]) -> None:
    monkey = pytest.MonkeyPatch()
    try:
        monkey.setenv("CITYWARN_DETECTOR", "nosuch")
        [line] = check_lines(capsys, ["check"])
    finally:
        monkey.undo()
    assert line.startswith("environment: CITYWARN_DETECTOR: 'nosuch' is not a detector; known: ")


def test_a_variable_that_sets_nothing_is_named_with_the_setting_it_may_mean(
    city: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CITYWARN_DATABASE_ULR", "postgresql://db/citywarn")
    monkeypatch.setenv("CITYWARN_PORT", "tcp://10.0.0.7:8000")  # Kubernetes' link to a service named citywarn
    monkeypatch.setenv("citywarn_detector", "recordensemble")  # a setting: read whatever its case
    main(["check"])  # returns: a warning is no reason to refuse to start
    captured = capsys.readouterr()
    assert "configuration ok" in captured.out
    assert captured.err.splitlines() == [
        "warning: environment: CITYWARN_DATABASE_ULR: not a citywarn setting, ignored; "
        "did you mean CITYWARN_DATABASE_URL?",
        "warning: environment: CITYWARN_PORT: not a citywarn setting, ignored",
    ]


def test_a_command_that_starts_logs_the_variables_that_set_nothing(
    city: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CITYWARN_STORE_ULR", "influxdb://127.0.0.1:8086/city")
    with caplog.at_level(logging.WARNING, logger="citywarn"):
        main(["migrate"])
    assert (
        "environment: CITYWARN_STORE_ULR: not a citywarn setting, ignored; did you mean CITYWARN_STORE_URL?"
        in caplog.messages
    )


@pytest.mark.parametrize("command", STARTS)
def test_every_start_checks_first_and_starts_nothing(
    command: str,
    city: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def tripwire(self: EmbeddedBroker) -> EmbeddedBroker:
        raise AssertionError("the broker started before the configuration was checked")

    monkeypatch.setattr(EmbeddedBroker, "start", tripwire)
    monkeypatch.setenv("CITYWARN_KAFKA_BOOTSTRAP", "" if command == "run" else "127.0.0.1:1")
    edit(city / "sensors.yaml", "area: g-riverside-01,", "area: nowhere,")
    assert check_lines(capsys, [command]) == [
        f"{city}/sensors.yaml: sensors[wl-riverside-01].area: 'nowhere' is not an area in areas.geojson"
    ]
    assert not (tmp_path / "var").exists(), "state was created before the configuration was checked"


def test_the_bundled_assets_go_with_the_bundled_areas_only(tmp_path: Path) -> None:
    """A city of its own (its own areas file) starts without the bundled city's assets unless given some."""
    own_areas, own_assets = tmp_path / "areas.geojson", tmp_path / "assets.yaml"
    assert Settings().asset_register() == CITY_DIR / "assets.yaml"
    assert Settings(areas_path=own_areas).asset_register() is None
    assert Settings(areas_path=own_areas, assets_path=own_assets).asset_register() == own_assets


def test_every_setting_has_a_description() -> None:
    missing = [name for name, field in Settings.model_fields.items() if not field.description]
    assert missing == []


def test_the_readme_lists_every_setting_as_the_generator_prints_it() -> None:
    text = README.read_text(encoding="utf-8")
    start, end = text.index(START_MARKER) + len(START_MARKER), text.index(END_MARKER)
    assert text[start:end].strip() == settings_table().strip(), (
        "README's settings table is stale: run python -m config.settings_doc --write README.md"
    )
    for name in Settings.model_fields:
        assert f"`CITYWARN_{name.upper()}`" in text[start:end]


def test_a_file_that_is_not_yaml_is_one_line_naming_where_it_breaks(
    city: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Parsed by libyaml (config.yaml_docs): it must name the place PyYAML's own parser names."""
    edit(city / "sensors.yaml", "area: g-riverside-01,", "area: [g-riverside-01,")
    with pytest.raises(yaml.MarkedYAMLError) as pure:
        yaml.load((city / "sensors.yaml").read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    mark = pure.value.problem_mark
    assert mark is not None
    [only] = check_lines(capsys, ["check"])
    assert only.startswith(
        f"{city}/sensors.yaml: line {mark.line + 1}, column {mark.column + 1}: not valid YAML: "
    ), only
