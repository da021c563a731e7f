"""Site parameters: every error names the file and the line of the setting at fault."""

from pathlib import Path

import pytest
import yaml

from handoff_lib.errors import PathEscapeError, SettingsError
from handoff_lib.load.settings import load_settings

DEMO = Path("parameters/demo.yaml")


def write_site(tmp_path: Path, edit) -> Path:
    raw = yaml.safe_load(DEMO.read_text())
    raw["data"] = {"folder": "data", "allowed_roots": ["."]}
    edit(raw)
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def test_demo_site_loads_with_its_cutoffs_and_rules():
    s = load_settings(DEMO)
    assert s.site == "demo" and s.timezone == "America/New_York"
    assert {(c.carrier, c.service) for c in s.cutoffs} >= {("UPS", "GND"), ("LTL", "*")}
    assert s.sources["pick_tasks"].values["status"]["40"] == "short"
    assert s.identifiers["pick_ticket"].line_suffix


def test_unknown_timezone_names_the_line(tmp_path):
    path = write_site(tmp_path, lambda r: r.update(timezone="Mars/Olympus"))
    with pytest.raises(SettingsError, match=r"site.yaml line \d+: unknown timezone 'Mars/Olympus'"):
        load_settings(path)


def test_mapping_an_unknown_contract_field_names_the_line(tmp_path):
    path = write_site(tmp_path, lambda r: r["sources"]["orders"]["columns"].update(promise_shipby="X"))
    with pytest.raises(SettingsError, match=r"line \d+: 'promise_shipby' is not a field of orders"):
        load_settings(path)


def test_a_status_mapped_to_a_value_outside_the_vocabulary_is_refused(tmp_path):
    path = write_site(tmp_path, lambda r: r["sources"]["pick_tasks"]["values"]["status"].update({"50": "lost"}))
    with pytest.raises(SettingsError, match=r"'lost' is not a status value"):
        load_settings(path)


def test_missing_required_source_is_named(tmp_path):
    path = write_site(tmp_path, lambda r: r["sources"].pop("pick_tasks"))
    with pytest.raises(SettingsError, match="missing source 'pick_tasks'"):
        load_settings(path)


def test_link_templates_must_be_http(tmp_path):
    path = write_site(tmp_path, lambda r: r["links"].update(wms="javascript:alert(1)//{task_id}"))
    with pytest.raises(SettingsError, match=r"links.*http"):
        load_settings(path)


def test_data_folder_outside_allowed_roots_is_refused(tmp_path):
    path = write_site(tmp_path, lambda r: r["data"].update(folder="../../etc"))
    with pytest.raises(PathEscapeError, match="outside the allowed folders"):
        load_settings(path)


def test_source_file_escaping_the_data_folder_is_refused(tmp_path):
    path = write_site(tmp_path, lambda r: r["sources"]["orders"].update(file="../secret.csv"))
    with pytest.raises(PathEscapeError, match="inside the data folder"):
        load_settings(path)


def test_bad_pickup_time_names_the_line(tmp_path):
    path = write_site(tmp_path, lambda r: r["cutoffs"][0].update(pickup="25:00"))
    with pytest.raises(SettingsError, match=r"line \d+: '25:00' is not a time of day"):
        load_settings(path)


def test_broken_yaml_names_the_line(tmp_path):
    path = tmp_path / "site.yaml"
    path.write_text("site: x\ntimezone: [unclosed\n")
    with pytest.raises(SettingsError, match=r"site.yaml line \d+: not valid YAML"):
        load_settings(path)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(SettingsError, match="not found"):
        load_settings(tmp_path / "nope.yaml")


def test_site_spellings_of_yes_and_no_are_used(tmp_path):
    path = write_site(tmp_path, lambda r: r.update(booleans={True: ["JA"], False: ["NEIN"]}))
    s = load_settings(path)
    assert s.booleans == (frozenset({"ja"}), frozenset({"nein"}))


def test_a_constant_enum_value_must_be_mapped(tmp_path):
    path = write_site(tmp_path, lambda r: r["sources"]["orders"]["columns"].update(release_status={"value": "OPENISH"}))
    with pytest.raises(SettingsError, match=r"line \d+: constant release_status 'OPENISH' is not mapped"):
        load_settings(path)


def test_a_column_mapping_with_an_unknown_key_is_refused_naming_it(tmp_path):
    path = write_site(tmp_path, lambda r: r["sources"]["orders"]["columns"].update(carrier={"const": "X"}))
    with pytest.raises(SettingsError, match=r"line \d+: unknown setting sources.orders.columns.carrier.const \(known here: column, date"):
        load_settings(path)


def test_a_column_mapping_that_mixes_two_forms_is_refused(tmp_path):
    path = write_site(tmp_path, lambda r: r["sources"]["orders"]["columns"].update(carrier={"value": "X", "column": "Y"}))
    with pytest.raises(SettingsError, match=r"line \d+: sources.orders.columns.carrier must name a column, or be one of: .*it mixes value, column"):
        load_settings(path)


def test_missing_required_source_says_how_to_declare_it_absent(tmp_path):
    path = write_site(tmp_path, lambda r: r["sources"].pop("holds"))
    with pytest.raises(SettingsError, match=r"missing source 'holds'.*holds: \{file: null\}"):
        load_settings(path)
