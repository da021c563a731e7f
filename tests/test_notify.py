"""Delivering owner queues to real local servers the tests start on loopback: an SMTP server (aiosmtpd) and an
HTTP receiver (http.server in a thread). Content, once-only sending, retry after a refused connection, escaping,
held and quiet queues, the settings' refusals, and the demo day's 14:30 messages against blocker_queue.csv."""

from __future__ import annotations

import copy
import datetime as dt
import email
import json
import shutil
import socket
import threading
from dataclasses import replace
from email import policy
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest
from aiosmtpd.controller import Controller
from conftest import ROOT, make_site
from scenario_tables import at
from test_owners import credit_day

from handoff_lib.errors import SettingsError
from handoff_lib.publish import notify, owners


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Inbox:
    """What the SMTP server received: one email.message per DATA."""

    def __init__(self):
        self.messages: list[email.message.EmailMessage] = []
        self.envelopes: list = []

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd's hook name
        self.envelopes.append(envelope)
        self.messages.append(email.message_from_bytes(envelope.original_content or envelope.content, policy=policy.default))
        return "250 OK"


class SmtpServer:
    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.inbox = Inbox()
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)

    def __enter__(self):
        self.controller.start()
        return self

    def __exit__(self, *exc):
        self.controller.stop()


class Receiver:
    """An HTTP server on loopback that records every POST body (JSON) and answers 200."""

    def __init__(self, port: int = 0):
        self.bodies: list[dict] = []
        self.headers: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", 0))
                outer.bodies.append(json.loads(self.rfile.read(n)))
                outer.headers.append(dict(self.headers))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/T000/B000/secretpath"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def with_notify(settings, block: dict):
    raw = copy.deepcopy(settings.raw)
    raw["notify"] = block
    return replace(settings, raw=raw)


def smtp_block(port: int, **owners_) -> dict:
    return {"smtp": {"host": "127.0.0.1", "port": port, "security": "none", "from": "handoff@dc.example"},
            "allowed_domains": ["dc.example"], "owners": owners_}


def written(tmp_path: Path, settings, previous=True, stale=None):
    s = credit_day()
    qs = owners.build_queues(s.con, settings, at("14:00"), at("12:00") if previous else None, stale=stale,
                             owners=list(notify.notify_settings(settings).routes))
    folder = tmp_path / "review" / "owners"
    notify.write_files(qs, folder)
    return folder


def parts(msg) -> dict[str, str]:
    return {p.get_content_type(): p.get_content() for p in msg.walk() if not p.is_multipart()}


def test_an_owner_email_has_a_plain_and_an_html_part_with_the_escaped_note_and_is_sent_once(tmp_path):
    with SmtpServer() as smtp:
        settings = with_notify(credit_day().settings, smtp_block(smtp.port, finance={"email": ["ar@dc.example"]}))
        folder = written(tmp_path, settings)
        first = notify.deliver(settings, tmp_path / "history.duckdb", folder, at("14:00"))
        again = notify.deliver(settings, tmp_path / "history.duckdb", folder, at("14:00"))
        assert [(d.owner, d.channel, d.status) for d in first] == [("finance", "email", "sent")]
        assert [d.status for d in again] == ["already sent"]
        assert len(smtp.inbox.messages) == 1  # the second delivery sent nothing
        msg = smtp.inbox.messages[0]
        assert msg["Subject"] == "Finance: 4 orders for the 16:00 UPS pickup wait on credit hold, 1 new"
        assert msg["To"] == "ar@dc.example" and smtp.inbox.envelopes[0].rcpt_tos == ["ar@dc.example"]
        body = parts(msg)
        assert set(body) == {"text/plain", "text/html"}
        assert "order Z1" in body["text/plain"] and "<script>window.pwned = 1</script>" in body["text/plain"]
        assert "<script" not in body["text/html"] and "&lt;script&gt;window.pwned = 1&lt;/script&gt;" in body["text/html"]
    log = notify.logged(tmp_path / "history.duckdb")
    assert [(r["owner"], r["channel"], r["status"], r["attempts"]) for r in log] == [("finance", "email", "sent", 1)]


def test_a_webhook_gets_the_chat_shape_once_with_the_note_inert(tmp_path):
    with Receiver() as hook:
        settings = with_notify(credit_day().settings, {"owners": {"finance": {"webhook": {"url": hook.url}}}})
        folder = written(tmp_path, settings)
        out = notify.deliver(settings, tmp_path / "h.duckdb", folder, at("14:00"))
        notify.deliver(settings, tmp_path / "h.duckdb", folder, at("14:00"))
    assert [d.status for d in out] == ["sent"] and len(hook.bodies) == 1
    assert "secretpath" not in out[0].target and out[0].target.startswith("http://127.0.0.1:")  # the URL's path is a secret
    body = hook.bodies[0]
    assert set(body) == {"text", "blocks"}
    assert body["text"].startswith("*Finance: 4 orders for the 16:00 UPS pickup wait on credit hold, 1 new*")
    assert "<script" not in body["text"] and "<!channel>" not in body["text"] and "&lt;!channel&gt;" in body["text"]
    assert all(b["type"] == "section" and len(b["text"]["text"]) <= 3000 for b in body["blocks"])


def test_a_webhook_template_is_filled_without_changing_its_structure(tmp_path):
    template = tmp_path / "teams.json"
    template.write_text(json.dumps({"title": "{{subject}}", "summary": "open: {{open}}", "items": "{{rows}}",
                                    "body": [{"type": "TextBlock", "text": "{{plain_text}}"}]}))
    with Receiver() as hook:
        settings = with_notify(credit_day().settings,
                               {"owners": {"finance": {"webhook": {"url": hook.url, "template": str(template)}}}})
        folder = written(tmp_path, settings)
        notify.deliver(settings, tmp_path / "h.duckdb", folder, at("14:00"))
    body = hook.bodies[0]
    assert body["title"].startswith("Finance: 4 orders") and body["summary"] == "open: 4"
    assert body["items"][0]["order_id"] == "Z1" and len(body["items"]) == 4
    assert '<script>window.pwned = 1</script> <!channel> call AR & "ask"' in body["body"][0]["text"]  # a value, not JSON


def test_a_refused_connection_is_recorded_and_the_next_schedule_retry_sends_it(tmp_path):
    port = free_port()  # nothing listens there yet: connection refused
    settings = with_notify(credit_day().settings, smtp_block(port, finance={"email": ["ar@dc.example"]}))
    folder = written(tmp_path, settings)
    (folder.parent / "manifest.json").write_text("{}")
    history = tmp_path / "history.duckdb"
    first = notify.deliver(settings, history, folder, at("14:00"))
    assert [d.status for d in first] == ["failed"] and "Refused" in first[0].error
    assert notify.logged(history)[0]["status"] == "failed"
    with SmtpServer(port) as smtp:
        tried = notify.retry_failed(settings, history, now=at("14:10"))
        assert [d.status for d in tried] == ["sent"] and len(smtp.inbox.messages) == 1
        assert notify.retry_failed(settings, history, now=at("14:20")) == []  # nothing failed any more
        assert len(smtp.inbox.messages) == 1
    row = notify.logged(history)[0]
    assert (row["status"], row["attempts"]) == ("sent", 2)
    manifest = json.loads((folder.parent / "manifest.json").read_text())
    assert manifest["notify"]["failed"] == 0 and manifest["notify"]["deliveries"][0]["status"] == "sent"


def test_a_stale_review_held_back_sends_nothing_and_a_quiet_owner_gets_nothing(tmp_path):
    with Receiver() as hook:
        settings = with_notify(credit_day().settings, {"owners": {
            "finance": {"webhook": hook.url}, "replenishment": {"webhook": hook.url, "send_when": "new"},
            "packing": {"webhook": hook.url}, "quality": {"webhook": hook.url, "send_when": "always"}}})
        folder = written(tmp_path, settings)
        held = notify.deliver(settings, tmp_path / "a.duckdb", folder, at("14:00"), held=True)
        assert {d.status for d in held} == {"held"} and hook.bodies == []
        out = {d.owner: d for d in notify.deliver(settings, tmp_path / "b.duckdb", folder, at("14:00"))}
    assert out["finance"].status == "sent"
    assert (out["replenishment"].status, out["replenishment"].error) == ("quiet", "nothing new")  # 3 open, 0 new
    assert (out["packing"].status, out["packing"].error) == ("quiet", "nothing open")
    assert out["quality"].status == "sent"  # always: even an empty queue
    assert len(hook.bodies) == 2 and any("Quality: no open blockers" in b["text"] for b in hook.bodies)


def test_quiet_hours_across_midnight_hold_a_message():
    route = notify.Route("finance", send_when="always", quiet_hours=(dt.time(20), dt.time(6)))
    info = {"open": 3, "new": 1}
    assert notify._quiet(route, info, at("21:30")) == "quiet hours 20:00-06:00"
    assert notify._quiet(route, info, at("05:59")) == "quiet hours 20:00-06:00"
    assert notify._quiet(route, info, at("14:00")) is None


@pytest.mark.parametrize("block, message", [
    ({"smtp": {"host": "h", "from": "a@dc.example", "password": "hunter2"}}, "must not be written in the site file"),
    ({"smtp": {"host": "h", "from": "a@dc.example", "password_file": str(ROOT / "parameters" / "smtp.pass")}},
     "is inside the repository"),
    ({"smtp": {"host": "h", "from": "a@dc.example"}, "allowed_domains": ["dc.example"],
      "owners": {"finance": {"email": ["buyer@customer.example"]}}}, "never to customers"),
    ({"owners": {"fiance": {"webhook": "https://chat.example/x"}}}, "no blocker reason has this owner"),
    ({"owners": {"finance": {"webhook": "file:///etc/passwd"}}}, r"must be an http\(s\) URL"),
    ({"owners": {"finance": {"email": ["ar@dc.example"]}}}, "notify.smtp is not set"),
])
def test_a_bad_notify_block_is_refused_naming_the_setting(block, message):
    settings = with_notify(credit_day().settings, block)
    with pytest.raises(SettingsError, match=message) as exc:
        notify.notify_settings(settings)
    assert "hunter2" not in str(exc.value)


def test_a_missing_password_variable_fails_the_delivery_without_showing_a_secret(tmp_path, monkeypatch):
    monkeypatch.delenv("HANDOFF_TEST_SMTP_PW", raising=False)
    with SmtpServer() as smtp:
        block = smtp_block(smtp.port, finance={"email": ["ar@dc.example"]})
        block["smtp"] |= {"user": "handoff", "password_env": "HANDOFF_TEST_SMTP_PW"}
        settings = with_notify(credit_day().settings, block)
        folder = written(tmp_path, settings)
        out = notify.deliver(settings, tmp_path / "h.duckdb", folder, at("14:00"))
    assert out[0].status == "failed" and "HANDOFF_TEST_SMTP_PW is not set" in out[0].error


def test_a_failed_delivery_does_not_fail_the_review_and_the_next_schedule_sends_it(tmp_path, demo_day):
    from handoff_lib.load.settings import load_settings
    from handoff_lib.publish.runs import schedule

    data = tmp_path / "data"
    shutil.copytree(demo_day, data)
    port = free_port()  # refused until the receiver starts below
    url = f"http://127.0.0.1:{port}/hook"
    settings = load_settings(make_site(tmp_path, data / "{time}", notify={"owners": {"finance": {"webhook": url}}}))
    noon = dt.datetime(2026, 11, 24, 12, 5, tzinfo=settings.tz)
    first = schedule(settings, noon, days_back=0, progress=False)
    assert len(first.results) == 1  # the review ran and was published
    manifest = json.loads((first.results[0].out_dir / "manifest.json").read_text())
    assert manifest["notify"]["failed"] == 1
    assert manifest["notify"]["deliveries"][0]["status"] == "failed" and "refused" in manifest["notify"]["deliveries"][0]["error"].lower()
    with Receiver(port) as hook:
        again = schedule(settings, noon + dt.timedelta(minutes=5), days_back=0, progress=False)
    assert again.results == [] and [d.status for d in again.retried] == ["sent"]
    assert len(hook.bodies) == 1 and hook.bodies[0]["text"].startswith("*Finance: ")
    manifest = json.loads((first.results[0].out_dir / "manifest.json").read_text())
    assert manifest["notify"]["failed"] == 0 and manifest["notify"]["deliveries"][0]["status"] == "sent"


def test_a_bad_notify_block_stops_the_run_before_it_starts(tmp_path, demo_day):
    from handoff_lib.load.settings import load_settings
    from handoff_lib.publish.runs import run_review

    settings = load_settings(make_site(tmp_path, demo_day / "{time}", notify={"owners": {"finanse": {"webhook": "https://x.example/h"}}}))
    with pytest.raises(SettingsError, match="finanse"):
        run_review(settings, dt.datetime(2026, 11, 24, 12, 0, tzinfo=settings.tz), progress=False)
    assert not (tmp_path / "outputs" / "demo" / "history.duckdb").exists()


# ------------------------------------------------------------------------------------------- the demo day


class BlockerRows(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "tr" and "data-blocker" in a:
            self.ids.append(a["data-blocker"])


@pytest.fixture(scope="module")
def demo_1430(tmp_path_factory):
    """A 400-order demo day reviewed at 12:00 and 14:30 with every owner routed to a local SMTP server and a
    local webhook receiver; the 14:30 review is then run again."""
    from handoff_lib.load.demo import generate
    from handoff_lib.load.settings import load_settings
    from handoff_lib.publish.notify import site_owners
    from handoff_lib.publish.runs import run_review

    tmp = tmp_path_factory.mktemp("notify_demo")
    data = tmp / "data"
    generate(orders=400, seed=11, out=data, at=("12:00", "14:30"), site_file=ROOT / "parameters/demo.yaml", progress=False)
    with SmtpServer() as smtp, Receiver() as hook:
        base = load_settings(make_site(tmp, data / "{time}"))
        routes = {o: {"email": [f"{owners.slug(o)}@dc.example"], "webhook": hook.url, "send_when": "always"}
                  for o in site_owners(base)}
        site = make_site(tmp, data / "{time}", notify=smtp_block(smtp.port, **routes))
        settings = load_settings(site)
        day = dt.date(2026, 11, 24)
        t1200, t1430 = (dt.datetime.combine(day, dt.time(h, m), tzinfo=settings.tz) for h, m in ((12, 0), (14, 30)))
        run_review(settings, t1200, progress=False)
        n_before = len(smtp.inbox.messages)
        result = run_review(settings, t1430, progress=False)
        messages = smtp.inbox.messages[n_before:]
        bodies = hook.bodies[n_before:]
        rerun = run_review(settings, t1430, progress=False)
        after_rerun = len(smtp.inbox.messages) - n_before - len(messages), len(hook.bodies) - n_before - len(bodies)
    yield settings, result, rerun, messages, bodies, after_rerun
    shutil.rmtree(tmp, ignore_errors=True)


def test_on_the_demo_day_each_owners_1430_message_lists_exactly_its_open_blockers_in_the_blocker_queue(demo_1430):
    settings, result, _, messages, _, _ = demo_1430
    queue = pd.read_csv(result.out_dir / "blocker_queue.csv", encoding="utf-8-sig", dtype=str)
    by_owner = queue.groupby("owner")["blocker_id"].apply(set).to_dict()
    got = {}
    for msg in messages:
        rows = BlockerRows()
        rows.feed(parts(msg)["text/html"])
        assert len(rows.ids) == len(set(rows.ids))
        got[msg["To"].split("@")[0]] = set(rows.ids)
    routed = notify.notify_settings(settings).routes
    assert len(messages) == len(routed)  # one e-mail per owner team (send_when: always)
    for owner in routed:
        assert got[owners.slug(owner)] == by_owner.get(owner, set()), owner
    assert sum(len(v) for v in got.values()) == len(queue)


def test_on_the_demo_day_a_rerun_of_the_1430_review_sends_nothing_and_says_so_in_its_manifest(demo_1430):
    _, _, rerun, messages, bodies, after_rerun = demo_1430
    assert len(bodies) == len(messages) > 0
    assert after_rerun == (0, 0)
    manifest = json.loads((rerun.out_dir / "manifest.json").read_text())
    assert {d["status"] for d in manifest["notify"]["deliveries"]} == {"already sent"}
    assert manifest["notify"]["failed"] == 0
    assert (rerun.out_dir / "owners" / "finance.html").exists() and (rerun.out_dir / "owners" / "finance.csv").exists()
