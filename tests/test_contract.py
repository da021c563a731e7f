"""The extract contract and its documentation stay in step."""

from pathlib import Path

from handoff_lib.load.contract import ENTITIES, TYPES, contract_tables


def test_docs_hold_the_generated_field_tables():
    doc = Path("docs/extracts.md").read_text(encoding="utf-8")
    assert contract_tables() in doc, "docs/extracts.md is stale: paste contract_tables() output into it"


def test_every_field_has_a_known_type_and_a_description():
    for e in ENTITIES.values():
        for f in e.fields:
            assert f.type in TYPES, (e.name, f.name)
            assert f.description, (e.name, f.name)
            assert (f.type == "enum") == bool(f.values), (e.name, f.name)


def test_keys_and_any_of_name_real_fields():
    for e in ENTITIES.values():
        names = {f.name for f in e.fields}
        assert set(e.key) <= names and set(e.any_of) <= names, e.name
