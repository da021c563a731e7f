"""Strict site files (handoff_lib/load/site_keys.py): an unknown or misspelled key anywhere is an error naming
its line and the nearest known key; every shipped and fixture site file loads; the schema and the modules
that read the site file know the same keys."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest
import yaml

from handoff_lib.errors import SettingsError
from handoff_lib.load.contract import ENTITIES
from handoff_lib.load.settings import load_settings
from handoff_lib.load.site_keys import Each, Keys, Seq, _source, schema

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "parameters" / "demo.yaml"


def site_files() -> list[Path]:
    """Every site file the project ships or tests with (a taxonomy such as reasons.yaml is not one)."""
    found = sorted(ROOT.glob("parameters/*.yaml")) + sorted((ROOT / "tests" / "fixtures").glob("**/*.yaml"))
    return [p for p in found if "sources" in (yaml.safe_load(p.read_text(encoding="utf-8")) or {})]


def test_the_project_ships_the_site_files_this_test_loads():
    names = {p.relative_to(ROOT).as_posix() for p in site_files()}
    assert {"parameters/demo.yaml", "parameters/olist.yaml", "tests/fixtures/site2/site.yaml", "tests/fixtures/site3/site.yaml"} <= names


@pytest.mark.parametrize("path", site_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_shipped_and_fixture_site_file_loads_under_the_strict_check(path):
    load_settings(path)


def presets() -> list[Path]:
    return sorted((ROOT / "parameters" / "presets").glob("*.yaml"))


def test_the_project_ships_the_presets_this_test_loads():
    assert {p.name for p in presets()} >= {"odoo-transfers.yaml", "shopware5-orders.yaml"}


@pytest.mark.parametrize("preset", presets(), ids=lambda p: p.name)
def test_every_preset_loads_under_the_strict_check_as_it_is_used(tmp_path, preset):
    # A preset is used by copying its sources: entries into a site file (presets.py); as copied, every key is known.
    raw = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    raw["data"] = {"folder": ".", "allowed_roots": ["."]}
    raw["sources"].update(yaml.safe_load(preset.read_text(encoding="utf-8"))["sources"])
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False, allow_unicode=True), encoding="utf-8")
    settings = load_settings(path)
    assert set(yaml.safe_load(preset.read_text(encoding="utf-8"))["sources"]) <= set(settings.sources)


def write(tmp_path: Path, edit) -> Path:
    raw = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    raw["data"] = {"folder": ".", "allowed_roots": ["."]}
    raw["calendars"] = {"site": {"holidays": {"country": "US"}}, "carriers": {"UPS": {"delivery_days": ["mon"]}}}
    edit(raw)
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


def line_of(path: Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1) if text in line)


# (where, how it is misspelled, what the error must suggest): one per section of the site file
MISSPELLED = [
    ("top level", lambda r: r.update(calendar=r.pop("calendars")), "calendar:", "unknown setting calendar; did you mean 'calendars'"),
    ("data", lambda r: r["data"].update(allowed_root=["."]), "allowed_root:", "unknown setting data.allowed_root; did you mean 'allowed_roots'"),
    ("reviews", lambda r: r["reviews"].update(time=["09:00"]), "time:", "unknown setting reviews.time; did you mean 'times'"),
    ("booleans", lambda r: r["booleans"].update(ture=["Y"]), "ture:", "'ture' is not a yes/no list"),
    ("data_quality", lambda r: r.update(data_quality={"max_bad_share": 3}), "max_bad_share:",
     "unknown setting data_quality.max_bad_share; did you mean 'max_bad_share_pct'"),
    ("notes", lambda r: r["notes"].update(modle="x"), "modle:", "unknown setting notes.modle; did you mean 'model'"),
    ("sources", lambda r: r["sources"].update(hold=r["sources"].pop("holds")), "  hold:",
     "'hold' is not an entity of the extract contract \\(sources.hold\\); did you mean 'holds'"),
    ("a source", lambda r: r["sources"]["orders"].update(delimeter=";"), "delimeter:",
     "unknown setting sources.orders.delimeter; did you mean 'delimiter'"),
    ("a source's number format", lambda r: r["sources"]["order_lines"].update(decimal=","), "decimal:",
     "unknown setting sources.order_lines.decimal; it belongs under number_format: \\(number_format: \\{decimal: ...\\}\\)"),
    ("number_format", lambda r: r["sources"]["order_lines"].update(number_format={"decimals": ","}), "decimals:",
     "unknown setting sources.order_lines.number_format.decimals; did you mean 'decimal'"),
    ("columns", lambda r: r["sources"]["orders"]["columns"].update(promise_date="PromiseDate"), "promise_date:",
     "'promise_date' is not a field of orders \\(sources.orders.columns.promise_date\\); did you mean 'promised_delivery'"),
    ("a column form", lambda r: r["sources"]["orders"]["columns"].update(ordered_at={"date": "D", "tme": "T"}), "tme:",
     "unknown setting sources.orders.columns.ordered_at.tme; did you mean 'time'"),
    ("a derive rule", lambda r: r["sources"]["orders"]["columns"].update(release_status={"derive": [{"value": "released", "whn": {}}]}),
     "whn:", "unknown setting sources.orders.columns.release_status.derive\\[0\\].whn; did you mean 'when'"),
    ("values", lambda r: r["sources"]["pick_tasks"]["values"].update(stauts={"10": "open"}), "stauts:",
     "'stauts' is not a field of pick_tasks \\(sources.pick_tasks.values.stauts\\); did you mean 'status'"),
    ("cutoffs", lambda r: r["cutoffs"][0].update(pikcup="15:00"), "pikcup:", "unknown setting cutoffs\\[0\\].pikcup; did you mean 'pickup'"),
    ("links", lambda r: r["links"].update(wsm="https://x/{task_id}"), "wsm:", "'wsm' is not a system or a kind of record \\(links.wsm\\); did you mean 'wms'"),
    ("identifiers", lambda r: r["identifiers"].update(pick_tickets={}), "pick_tickets:",
     "'pick_tickets' is not an identifier kind \\(identifiers.pick_tickets\\); did you mean 'pick_ticket'"),
    ("an identifier rule", lambda r: r["identifiers"]["order"].update(prefix=["SO"]), "prefix:",
     "unknown setting identifiers.order.prefix; did you mean 'prefixes'"),
    ("calendars", lambda r: r["calendars"]["carriers"]["UPS"].update(delivery_day=["mon"]), "delivery_day:",
     "unknown setting calendars.carriers.UPS.delivery_day; did you mean 'delivery_days'"),
    ("policy", lambda r: r["policy"].update(buffer_minute=30), "buffer_minute:", "unknown setting policy.buffer_minute; did you mean 'buffer_minutes'"),
    ("policy.reasons", lambda r: r["policy"]["reasons"]["credit_hold"].update(ownr="finance"), "ownr:",
     "unknown setting policy.reasons.credit_hold.ownr; did you mean 'owner'"),
    ("policy.priority", lambda r: r["policy"]["priority"]["value_bands"][0].update(atleast=1), "atleast:",
     "unknown setting policy.priority.value_bands\\[0\\].atleast; did you mean 'at_least'"),
    ("policy.work_minutes", lambda r: r["policy"]["work_minutes"].update(packing=3), "packing:",
     "unknown setting policy.work_minutes.packing; did you mean 'pack'"),
    ("policy.note_rules", lambda r: r["policy"]["note_rules"][0].update(regex="x"), "regex:",
     "unknown setting policy.note_rules\\[0\\].regex \\(known here: pattern, reason\\)"),
    ("policy.risk_score", lambda r: r["policy"].update(risk_score={"enable": True}), "enable:",
     "unknown setting policy.risk_score.enable; did you mean 'enabled'"),
    ("databases", lambda r: r.update(databases={"wms": {"url": {"env": "WMS_URL"}, "timeout": 60}}), "timeout:",
     "unknown setting databases.wms.timeout; did you mean 'timeout_s'"),
    ("a database url", lambda r: r.update(databases={"wms": {"url": {"envv": "WMS_URL"}}}), "envv:",
     "unknown setting databases.wms.url.envv; did you mean 'env'"),
    ("a database source", lambda r: r["sources"].update(pick_tasks={"database": "wms", "querry": "SELECT 1"}), "querry:",
     "unknown setting sources.pick_tasks.querry; did you mean 'query'"),
    ("freshness", lambda r: r["freshness"].update(max_ages={}), "max_ages:", "unknown setting freshness.max_ages; did you mean 'max_age'"),
    ("freshness.max_age", lambda r: r["freshness"]["max_age"].update(pick_task="30 min"), "pick_task:",
     "'pick_task' is not a source \\(or default\\) \\(freshness.max_age.pick_task\\); did you mean 'pick_tasks'"),
    ("store", lambda r: r["store"].update(engin="spark"), "engin:", "unknown setting store.engin; did you mean 'engine'"),
    ("labour", lambda r: r["labour"].update(productive_shares=0.8), "productive_shares:",
     "unknown setting labour.productive_shares; did you mean 'productive_share'"),
    ("labour.minutes", lambda r: r["labour"]["minutes"].update(pick_lines=1), "pick_lines:",
     "'pick_lines' is not a unit of work \\(labour.minutes.pick_lines\\); did you mean 'pick_line'"),
    ("a labour shift", lambda r: r["labour"]["shifts"][0]["people"].update(packing=3), "packing:",
     "'packing' is not an area \\(labour.shifts\\[0\\].people.packing\\); did you mean 'pack'"),
    ("labour.observed", lambda r: r["labour"]["observed"].update(window=60), "window:",
     "unknown setting labour.observed.window; did you mean 'window_minutes'"),
    ("notify.smtp", lambda r: r.update(notify={"smtp": {"host": "mail", "from": "a@b.c", "pasword_env": "X"}}), "pasword_env:",
     "unknown setting notify.smtp.pasword_env; did you mean 'password_env'"),
    ("a notify webhook", lambda r: r.update(notify={"owners": {"finance": {"webhook": {"url_evn": "X"}}}}), "url_evn:",
     "unknown setting notify.owners.finance.webhook.url_evn; did you mean 'url_env'"),
]


def test_the_demo_sites_commented_notify_block_loads_under_the_strict_check(tmp_path):
    """The notify: example in demo.yaml, uncommented, is a valid block (a webhook may also be a plain URL)."""
    lines = DEMO.read_text(encoding="utf-8").splitlines()
    start = lines.index("# notify:")
    block = [ln[2:] for ln in lines[start:] if ln.startswith("# ") or ln == "#"][:9]
    block.append("    shipping: {webhook: https://chat.example.com/hooks/x}")
    text = "\n".join(lines) + "\n" + "\n".join(block) + "\n"
    text = text.replace("folder: ../outputs/demo-data/latest/{time}", f"folder: {ROOT / 'outputs'}").replace(
        "allowed_roots: [..]", f"allowed_roots: [{ROOT}]").replace("taxonomy: reasons.yaml", f"taxonomy: {DEMO.parent / 'reasons.yaml'}")
    path = tmp_path / "site.yaml"
    path.write_text(text, encoding="utf-8")
    settings = load_settings(path)
    assert set(settings.raw["notify"]["owners"]) == {"finance", "replenishment", "shipping"}


@pytest.mark.parametrize("edit,text,message", [m[1:] for m in MISSPELLED], ids=[m[0] for m in MISSPELLED])
def test_a_misspelled_key_anywhere_names_its_line_and_the_nearest_known_key(tmp_path, edit, text, message):
    path = write(tmp_path, edit)
    with pytest.raises(SettingsError, match=rf"site\.yaml line {line_of(path, text)}: {message}"):
        load_settings(path)


def test_a_code_yaml_reads_as_a_number_must_be_quoted(tmp_path):
    path = tmp_path / "site.yaml"
    text = DEMO.read_text(encoding="utf-8").replace("folder: ../outputs/demo-data/latest/{time}", "folder: .").replace(
        "allowed_roots: [..]", "allowed_roots: [.]"
    )
    text = text.replace("hold_codes: {CR: credit_hold,", "hold_codes: {01: credit_hold, CR: credit_hold,")
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SettingsError, match=rf"site\.yaml line {line_of(path, '01: credit_hold')}: policy.hold_codes\[01\]: YAML reads 01 as int 1"):
        load_settings(path)
    path.write_text(text.replace("{01: credit_hold", '{"01": credit_hold'), encoding="utf-8")
    load_settings(path)  # quoted, the code stays as written


# ------------------------------------------------------------------ the schema and its readers know the same keys

READERS = {  # module -> the functions that read the site file
    "load.settings": ("load_settings", "_column_form", "_combined", "_number_format", "_derive_rules", "_conditions", "grace_minutes",
                      "day_starts_at"),
    "rules.policy": ("load_policy",),
    "rules.calendars": ("load_calendars", "_rules"),
    "learn.taxonomy": ("notes_settings",),
    "learn.risk": ("risk_policy",),
    "load.databases": ("parse_databases", "parse_source"),
    "load.freshness": ("freshness_settings",),
    "history.store": ("store_settings",),
    "rules.labour": ("load_labour",),
    "history.asof_orders": ("ship_by_known_from",),
    "publish.notify": ("notify_settings", "_secret"),
    "board.data": ("board_settings", "internal_fields"),  # board: internal_fields (docs/board.md)
    "board.auth": ("users_file",),  # board: users
}


def keys_read() -> set[str]:
    """Keys the readers look up: `x.get("key")`, `x["key"]`, `"key" in x`, the first two text arguments of
    the helpers they define inside (`need`, `number`, `mapping`, `codes`, `bands`, `dq`, `path`), and the key
    lists they use (names ending in _KEYS, _STEPS, _SETTING, _FORMS)."""
    out: set[str] = set()

    def text(node) -> set[str]:
        return {node.value} if isinstance(node, ast.Constant) and isinstance(node.value, str) else set()

    for name, funcs in READERS.items():
        module = importlib.import_module(f"handoff_lib.{name}")
        tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
        for fn in (n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in funcs):
            helpers = {n.name for n in ast.walk(fn) if isinstance(n, ast.FunctionDef) and n is not fn}
            for node in ast.walk(fn):
                if isinstance(node, ast.Call):
                    call = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                    if call == "get" and node.args:
                        out |= text(node.args[0])
                    elif call in helpers or call == "need":
                        for arg in node.args[:2]:
                            out |= text(arg)
                elif isinstance(node, ast.Subscript):
                    out |= text(node.slice)
                elif isinstance(node, ast.Compare) and isinstance(node.ops[0], (ast.In, ast.NotIn)):
                    out |= text(node.left)
                elif isinstance(node, ast.Name) and node.id.endswith(("_KEYS", "_STEPS", "_SETTING", "_FORMS")):
                    value = getattr(module, node.id)
                    out |= {v for v in (value if isinstance(value, (tuple, list)) else value.keys()) if isinstance(v, str)}
    return out


def keys_known() -> set[str]:
    """The names of every fixed key of the schema (not the site's own keys: entities, fields, codes)."""
    out: set[str] = set()

    def walk(spec):
        if isinstance(spec, Keys):
            for key, node in spec.nodes.items():
                out.add(key)
                walk(node)
        elif isinstance(spec, (Each, Seq)):
            walk(spec.node)

    walk(schema())
    for entity in ENTITIES:
        walk(_source(entity))
    return out


def test_every_key_a_reader_looks_up_is_in_the_schema():
    # booleans: keys YAML reads as true / false (site_keys.BOOLEAN_KEYS); '..' a path part; '://' tells a URL (`"://" in url`);
    # '@' tells an e-mail address (notify.py)
    own = {"true", "false", "..", "://", "@"}
    assert keys_read() - keys_known() - own == set()


def test_every_key_of_the_schema_is_read_by_some_reader():
    assert keys_known() - keys_read() == set()
