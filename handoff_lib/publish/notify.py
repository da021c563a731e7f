"""Delivering the owner queues (owners.py) after a review: always a file set per owner in the review folder, and
e-mail (SMTP) and a chat webhook where the site file's `notify:` block asks for them. Rules in docs/notify.md.

* Once only: every delivery is recorded in a sent-log beside the history database (`history.notify.sqlite`,
  SQLite like the acknowledgement log, so a board or a second command reading it never waits) keyed by site,
  review, owner and channel. A delivery recorded as sent is never made again; a re-run of the review writes the
  files again and sends nothing.
* A failed delivery never fails the review: it is recorded (`failed`, with the error), printed, written to the
  review's manifest.json (`notify`), and retried by the next `handoff schedule` (or `handoff notify --retry`)
  from the files the review wrote, so the retry sends what the review said.
* A stale review's queues are held back (`held`) or sent marked STALE, as `freshness.on_stale` says; a queue with
  nothing to say (`send_when`) or a review in the owner's `quiet_hours` is not sent (`quiet`).
* Nothing goes to a customer: recipients are per owner team in the site file (and must be in `allowed_domains`
  when the site lists them); customer drafts are never read here. Secrets (SMTP password, webhook URL or token)
  come from an environment variable or a file outside the repository and are never printed or logged.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import smtplib
import sqlite3
import ssl
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any

from handoff_lib.errors import HandoffError, SettingsError
from handoff_lib.load.settings import Settings

CHANNELS = ("email", "webhook")
SEND_WHEN = ("always", "open", "new")  # always; when the queue has open blockers; when something is new since the last review
FOLDER = "owners"  # in the review folder
PROJECT_ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 15.0


# ------------------------------------------------------------------------------------------------ settings


@dataclass(frozen=True)
class Secret:
    """Where a secret comes from: an environment variable or a file outside the repository (never the site file)."""

    setting: str  # 'notify.smtp.password' (for messages; the value is never shown)
    env: str | None = None
    file: Path | None = None

    def value(self) -> str:
        if self.env:
            v = os.environ.get(self.env)
            if not v:
                raise HandoffError(f"{self.setting}: environment variable {self.env} is not set")
            return v
        if self.file:
            try:
                return self.file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise HandoffError(f"{self.setting}: cannot read {self.file} ({exc.strerror})") from None
        raise HandoffError(f"{self.setting}: not set")


@dataclass(frozen=True)
class Smtp:
    host: str
    port: int
    security: str  # starttls | ssl | none
    sender: str
    user: str | None = None
    password: Secret | None = None


@dataclass(frozen=True)
class Webhook:
    url: Secret | str
    token: Secret | None = None  # sent as "Authorization: Bearer ..."
    template: Path | None = None  # a JSON file with {{placeholders}} (docs/notify.md); default: the chat shape


@dataclass(frozen=True)
class Route:
    owner: str
    email: tuple[str, ...] = ()
    webhook: Webhook | None = None
    send_when: str = "open"
    quiet_hours: tuple[dt.time, dt.time] | None = None


@dataclass(frozen=True)
class NotifySettings:
    smtp: Smtp | None = None
    routes: dict[str, Route] = field(default_factory=dict)
    allowed_domains: tuple[str, ...] = ()
    retry_days: int = 2  # `handoff schedule` retries failed deliveries of reviews this many days back


SECRET_KEYS = ("password", "password_env", "password_file", "url", "url_env", "url_file", "token", "token_env", "token_file")


def _secret(raw: dict, key: str, setting: str, where: str, settings: Settings) -> Secret | None:
    """`<key>_env` / `<key>_file` of a mapping (SECRET_KEYS); a plain `<key>` holding the secret itself is refused."""
    assert f"{key}_env" in SECRET_KEYS, key  # the settings a secret may be given by (site_keys.py lists them too)
    if raw.get(key) is not None and key in ("password", "token"):
        raise SettingsError(f"{where}: {setting} must not be written in the site file: use {key}_env (an environment variable) "
                            f"or {key}_file (a file outside the repository)")
    env, file = raw.get(f"{key}_env"), raw.get(f"{key}_file")
    if env and file:
        raise SettingsError(f"{where}: give {setting} as {key}_env or {key}_file, not both")
    if file:
        path = Path(str(file)).expanduser()
        path = path if path.is_absolute() else (settings.path.parent / path)
        path = path.resolve()
        for root in {PROJECT_ROOT, _repo_root(settings.path)} - {None}:
            if path.is_relative_to(root):
                raise SettingsError(f"{where}: {key}_file {file} is inside the repository ({root}); keep secrets outside it "
                                    "(e.g. /etc/handoff/, readable only by the user running handoff)")
        return Secret(setting, file=path)
    if env:
        return Secret(setting, env=str(env))
    return None


def _repo_root(path: Path) -> Path | None:
    for p in [path.resolve().parent, *path.resolve().parents]:
        if (p / ".git").exists():
            return p
    return None


def _hours(value: Any, where: str) -> tuple[dt.time, dt.time] | None:
    if value in (None, ""):
        return None
    try:
        a, b = str(value).split("-")
        return dt.time.fromisoformat(a.strip().zfill(5)), dt.time.fromisoformat(b.strip().zfill(5))
    except ValueError:
        raise SettingsError(f"{where}: quiet_hours is 'HH:MM-HH:MM' (site time, may span midnight), not {value!r}") from None


def notify_settings(settings: Settings, owners: list[str] | None = None) -> NotifySettings:
    """The site's `notify:` block, checked (docs/notify.md). No block: files only. `owners`: the site's owner
    teams (policy reasons); a route for a team that owns no reason is refused (a typo would send nothing)."""
    raw = settings.raw.get("notify")
    if raw is None:
        return NotifySettings()
    w = lambda *k: settings.where("notify", *k)
    if not isinstance(raw, dict):
        raise SettingsError(f"{w()}: notify: is a mapping (smtp:, owners:, ...)")
    known = {"smtp", "owners", "send_when", "quiet_hours", "allowed_domains", "retry_days"}
    if extra := set(raw) - known:
        raise SettingsError(f"{w(min(extra))}: notify.{min(extra)} is not a setting (one of {', '.join(sorted(known))})")
    smtp = None
    if (s := raw.get("smtp")) is not None:
        if not isinstance(s, dict) or not s.get("host") or not s.get("from"):
            raise SettingsError(f"{w('smtp')}: notify.smtp needs host: and from: (port:, security: starttls|ssl|none, user:, "
                                "password_env: or password_file:)")
        security = str(s.get("security", "starttls")).lower()
        if security not in ("starttls", "ssl", "none"):
            raise SettingsError(f"{w('smtp', 'security')}: notify.smtp.security is starttls, ssl or none, not {security!r}")
        port = int(s.get("port", {"starttls": 587, "ssl": 465, "none": 25}[security]))
        smtp = Smtp(str(s["host"]), port, security, str(s["from"]), str(s["user"]) if s.get("user") else None,
                    _secret(s, "password", "notify.smtp.password", w("smtp"), settings))
    default_when = str(raw.get("send_when", "open")).lower()
    if default_when not in SEND_WHEN:
        raise SettingsError(f"{w('send_when')}: notify.send_when is one of {', '.join(SEND_WHEN)}, not {default_when!r}")
    default_quiet = _hours(raw.get("quiet_hours"), w("quiet_hours"))
    domains = tuple(str(d).lower().lstrip("@") for d in (raw.get("allowed_domains") or []))
    routes = {}
    owners = owners if owners is not None else [*site_owners(settings), "unassigned"]
    for owner, r in (raw.get("owners") or {}).items():
        where = w("owners", owner)
        owner = str(owner)
        if owner not in owners:
            raise SettingsError(f"{where}: notify.owners.{owner}: no blocker reason has this owner (owners: {', '.join(sorted(owners))})")
        r = r or {}
        if not isinstance(r, dict):
            raise SettingsError(f"{where}: notify.owners.{owner} is a mapping (email:, webhook:, send_when:, quiet_hours:)")
        email = r.get("email") or []
        email = tuple(str(a).strip() for a in ([email] if isinstance(email, str) else email))
        for a in email:
            if "@" not in a or any(c in a for c in "\r\n<>,; "):
                raise SettingsError(f"{where}: notify.owners.{owner}.email: {a!r} is not one e-mail address")
            if domains and a.rsplit("@", 1)[1].lower() not in domains:
                raise SettingsError(f"{where}: notify.owners.{owner}.email: {a} is outside notify.allowed_domains "
                                    f"({', '.join(domains)}); owner queues go to the site's own teams, never to customers")
        if email and smtp is None:
            raise SettingsError(f"{where}: notify.owners.{owner} has e-mail recipients but notify.smtp is not set")
        webhook = None
        if (h := r.get("webhook")) is not None:
            h = {"url": h} if isinstance(h, str) else h
            if not isinstance(h, dict):
                raise SettingsError(f"{where}: notify.owners.{owner}.webhook is a URL or a mapping (url:/url_env:/url_file:, ...)")
            url = _secret(h, "url", f"notify.owners.{owner}.webhook.url", where, settings)
            if url is None:
                if not h.get("url"):
                    raise SettingsError(f"{where}: notify.owners.{owner}.webhook needs url:, url_env: or url_file:")
                url = str(h["url"])
                if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
                    raise SettingsError(f"{where}: notify.owners.{owner}.webhook.url must be an http(s) URL")
            template = None
            if h.get("template"):
                template = Path(str(h["template"]))
                template = template if template.is_absolute() else (settings.path.parent / template).resolve()
                if not template.is_file():
                    raise SettingsError(f"{where}: notify.owners.{owner}.webhook.template: no file {template}")
            webhook = Webhook(url, _secret(h, "token", f"notify.owners.{owner}.webhook.token", where, settings), template)
        when = str(r.get("send_when", default_when)).lower()
        if when not in SEND_WHEN:
            raise SettingsError(f"{where}: send_when is one of {', '.join(SEND_WHEN)}, not {when!r}")
        quiet = _hours(r["quiet_hours"], where) if "quiet_hours" in r else default_quiet
        routes[owner] = Route(owner, email, webhook, when, quiet)
    return NotifySettings(smtp, routes, domains, int(raw.get("retry_days", 2)))


def site_owners(settings: Settings) -> list[str]:
    from handoff_lib.rules.policy import load_policy

    return sorted({r.owner for r in load_policy(settings).reasons.values()})


# ------------------------------------------------------------------------------------------------ sent-log

SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    site        TEXT NOT NULL,
    review_date TEXT NOT NULL,
    review_time TEXT NOT NULL,   -- HHMM, site local
    owner       TEXT NOT NULL,
    channel     TEXT NOT NULL,   -- email | webhook
    status      TEXT NOT NULL,   -- sent | failed | held | quiet
    attempts    INTEGER NOT NULL DEFAULT 0,
    target      TEXT,            -- recipients, or the webhook's host (never its path or token)
    subject     TEXT,
    bytes       INTEGER,
    error       TEXT,
    first_at    TEXT NOT NULL,   -- UTC ISO 8601
    last_at     TEXT NOT NULL,
    sent_at     TEXT,
    outputs     TEXT,            -- the review folder (retries send its files)
    PRIMARY KEY (site, review_date, review_time, owner, channel)
);
"""


def log_path(history_db: str | Path) -> Path:
    """The sent-log that belongs to a history database (same folder, same stem)."""
    p = Path(history_db)
    return p.with_name(p.stem + ".notify.sqlite")


def _log(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(str(path), timeout=10, isolation_level=None)
    con.execute("PRAGMA journal_mode = WAL")
    con.executescript(SCHEMA)
    return con


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def logged(history_db: str | Path, site: str | None = None) -> list[dict]:
    """Every delivery in the sent-log (of one site), oldest review first."""
    path = log_path(history_db)
    if not path.exists():
        return []
    con = _log(path)
    try:
        con.row_factory = sqlite3.Row
        rows = con.execute("SELECT * FROM deliveries WHERE (? IS NULL OR site = ?) ORDER BY review_date, review_time, owner, channel",
                           [site, site]).fetchall()
        return [dict(r) for r in rows]
    finally:
        con.close()


def _record(con: sqlite3.Connection, key: tuple, status: str, target: str, subject: str, size: int | None, error: str | None,
            outputs: str, attempted: bool) -> None:
    now = _now()
    con.execute(
        """INSERT INTO deliveries (site, review_date, review_time, owner, channel, status, attempts, target, subject, bytes, error,
                                   first_at, last_at, sent_at, outputs)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT DO UPDATE SET status = excluded.status, attempts = deliveries.attempts + excluded.attempts,
               target = excluded.target, subject = excluded.subject, bytes = excluded.bytes, error = excluded.error,
               last_at = excluded.last_at, sent_at = coalesce(excluded.sent_at, deliveries.sent_at), outputs = excluded.outputs""",
        [*key, status, int(attempted), target, subject, size, error, now, now, now if status == "sent" else None, outputs],
    )


# ------------------------------------------------------------------------------------------------ channels


def email_message(smtp: Smtp, to: tuple[str, ...], subject: str, text: str, html: str, review: str) -> EmailMessage:
    """The e-mail: a plain-text part and an HTML alternative, marked as sent by a program."""
    msg = EmailMessage()
    msg["Subject"] = " ".join(subject.split())
    msg["From"] = smtp.sender
    msg["To"] = ", ".join(to)
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain=smtp.sender.rsplit("@", 1)[-1])
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Handoff-Review"] = review
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    return msg


def send_email(smtp: Smtp, msg: EmailMessage) -> None:
    """Hand the message to the SMTP server; raises OSError or smtplib.SMTPException on failure."""
    context = ssl.create_default_context()
    cls = smtplib.SMTP_SSL if smtp.security == "ssl" else smtplib.SMTP
    kw = {"context": context} if smtp.security == "ssl" else {}
    with cls(smtp.host, smtp.port, timeout=TIMEOUT_S, **kw) as s:
        if smtp.security == "starttls":
            s.starttls(context=context)
        if smtp.user:
            s.login(smtp.user, smtp.password.value() if smtp.password else "")
        s.send_message(msg)


def webhook_host(hook: Webhook) -> str:
    """Where a webhook goes, safe to print: its scheme and host (a chat webhook's path is its secret)."""
    try:
        url = hook.url.value() if isinstance(hook.url, Secret) else hook.url
    except HandoffError:
        return f"({hook.url.setting})"
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


def render_template(template: Any, values: dict[str, Any]) -> Any:
    """Fill a parsed JSON template: a string that is exactly '{{name}}' becomes the value (text, number or list), and
    '{{name}}' inside a longer string is replaced by the value's text. Works on parsed JSON, so a value can never
    change the document's structure."""
    if isinstance(template, dict):
        return {k: render_template(v, values) for k, v in template.items()}
    if isinstance(template, list):
        return [render_template(v, values) for v in template]
    if isinstance(template, str):
        whole = template.strip()
        if whole.startswith("{{") and whole.endswith("}}") and whole[2:-2].strip() in values:
            return values[whole[2:-2].strip()]
        out = template
        for k, v in values.items():
            if f"{{{{{k}}}}}" in out:
                out = out.replace(f"{{{{{k}}}}}", v if isinstance(v, str) else json.dumps(v, default=str))
        return out
    return template


def send_webhook(hook: Webhook, body: bytes) -> None:
    """POST the JSON body; raises OSError (urllib.error.URLError) or HandoffError on a non-2xx answer. The URL is
    never in the error (only its host)."""
    url = hook.url.value() if isinstance(hook.url, Secret) else hook.url
    headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "handoff-notify"}
    if hook.token:
        headers["Authorization"] = f"Bearer {hook.token.value()}"
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp:  # http(s) only, checked in the settings
            resp.read(65536)
            status = resp.status
    except urllib.error.HTTPError as exc:
        raise HandoffError(f"{webhook_host(hook)} answered HTTP {exc.code}") from None
    except urllib.error.URLError as exc:
        raise HandoffError(f"{webhook_host(hook)}: {exc.reason}") from None
    if not 200 <= status < 300:
        raise HandoffError(f"{webhook_host(hook)} answered HTTP {status}")


# ------------------------------------------------------------------------------------------------ after a review


@dataclass
class Delivery:
    owner: str
    channel: str
    status: str  # sent | failed | held | quiet | already sent
    target: str
    error: str | None = None
    bytes: int | None = None


def write_files(queues: dict, folder: Path) -> dict[str, dict]:
    """The files per owner in `folder` (<slug>.txt/.html/.csv/.json) and index.json (subject and counts per owner);
    written in a temporary folder and moved into place whole. Returns the index."""
    import shutil

    from handoff_lib.exports import write_csv

    from . import owners as ow

    tmp = folder.with_name(folder.name + ".part")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    index = {}
    for owner, q in queues.items():
        s = q.slug
        (tmp / f"{s}.txt").write_text(ow.text(q), encoding="utf-8")
        (tmp / f"{s}.html").write_text(ow.html(q), encoding="utf-8")
        (tmp / f"{s}.json").write_text(json.dumps(ow.payload(q), indent=1), encoding="utf-8")
        write_csv(ow.queue_frame(q), tmp / f"{s}.csv")
        index[owner] = {"slug": s, "subject": q.subject, "open": len(q.rows), "new": q.n_new, "orders": q.n_orders,
                        "stale": bool(q.stale), "site": q.site, "review": q.review_at.isoformat()}
    (tmp / "index.json").write_text(json.dumps(index, indent=1, default=str), encoding="utf-8")
    old = folder.with_name(folder.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        os.replace(folder, old)
    os.replace(tmp, folder)
    shutil.rmtree(old, ignore_errors=True)
    return index


def template_values(folder: Path, owner: str, info: dict) -> dict:
    """What a webhook template may use (docs/notify.md), read back from the owner's files: subject, text (the chat
    text), plain_text, owner, site, review, open, new, orders and rows (the queue's rows as in its CSV)."""
    import pandas as pd

    s = info["slug"]
    rows = pd.read_csv(folder / f"{s}.csv", encoding="utf-8-sig", dtype=str, keep_default_na=False)
    return {"subject": info["subject"], "text": json.loads((folder / f"{s}.json").read_text(encoding="utf-8"))["text"],
            "plain_text": (folder / f"{s}.txt").read_text(encoding="utf-8"), "owner": owner, "site": info.get("site"),
            "review": info.get("review"), "open": info["open"], "new": info["new"], "orders": info.get("orders", 0),
            "rows": rows.to_dict("records")}


def _quiet(route: Route, info: dict, at: dt.datetime) -> str | None:
    """Why an owner's message is not sent this time (None: send it)."""
    if route.send_when == "open" and info["open"] == 0:
        return "nothing open"
    if route.send_when == "new" and info["new"] == 0:
        return "nothing new"
    if route.quiet_hours:
        a, b = route.quiet_hours
        t = at.timetz().replace(tzinfo=None)
        if (a <= t < b) if a <= b else (t >= a or t < b):
            return f"quiet hours {a:%H:%M}-{b:%H:%M}"
    return None


def deliver(settings: Settings, history: Path, folder: Path, at: dt.datetime, held: bool = False, quiet_ok: bool = True,
            only_failed: bool = False) -> list[Delivery]:
    """Send what the owner files in `folder` (the review's owners/) say, per the site's routes, once only per
    (site, review, owner, channel) in the sent-log. `held`: a stale review whose queues are held back. Failures are
    recorded and returned, never raised."""
    ns = notify_settings(settings)
    index = json.loads((folder / "index.json").read_text(encoding="utf-8"))
    review = (settings.site, at.strftime("%Y-%m-%d"), at.strftime("%H%M"))
    out: list[Delivery] = []
    con = _log(log_path(history))
    try:
        done = {(r[0], r[1]): r[2] for r in con.execute(
            "SELECT owner, channel, status FROM deliveries WHERE site = ? AND review_date = ? AND review_time = ?", list(review))}
        for owner, route in sorted(ns.routes.items()):
            info = index.get(owner)  # every owner routed when the review ran has files, empty when it has nothing open
            if info is None:  # routed since: `handoff notify --at` writes its files first
                continue
            for channel in CHANNELS:
                if channel == "email" and not route.email or channel == "webhook" and route.webhook is None:
                    continue
                target = ", ".join(route.email) if channel == "email" else webhook_host(route.webhook)
                key = (*review, owner, channel)
                prior = done.get((owner, channel))
                if prior == "sent":
                    out.append(Delivery(owner, channel, "already sent", target))
                    continue
                if only_failed and prior != "failed":
                    continue
                if held:
                    _record(con, key, "held", target, info["subject"], None, "stale review: freshness.on_stale is hold", str(folder), False)
                    out.append(Delivery(owner, channel, "held", target, "stale review"))
                    continue
                why = _quiet(route, info, at)
                if why:
                    _record(con, key, "quiet", target, info["subject"], None, why, str(folder), False)
                    out.append(Delivery(owner, channel, "quiet", target, why))
                    continue
                try:
                    size = _send(ns, route, channel, folder, info, owner, at, settings)
                    _record(con, key, "sent", target, info["subject"], size, None, str(folder), True)
                    out.append(Delivery(owner, channel, "sent", target, None, size))
                except (OSError, smtplib.SMTPException, HandoffError, ValueError) as exc:
                    err = _error_text(exc)
                    _record(con, key, "failed", target, info["subject"], None, err, str(folder), True)
                    out.append(Delivery(owner, channel, "failed", target, err))
                    print(f"handoff notify: {owner} by {channel} to {target} failed: {err} (retried by the next handoff schedule)",
                          file=sys.stderr)
    finally:
        con.close()
    return out


def _error_text(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:300]


def _send(ns: NotifySettings, route: Route, channel: str, folder: Path, info: dict, owner: str, at: dt.datetime,
          settings: Settings) -> int:
    s = info["slug"]
    text = (folder / f"{s}.txt").read_text(encoding="utf-8")
    page = (folder / f"{s}.html").read_text(encoding="utf-8")
    body = (folder / f"{s}.json").read_bytes()
    if channel == "email":
        msg = email_message(ns.smtp, route.email, info["subject"], text, page, f"{settings.site} {at:%Y-%m-%d %H:%M} {owner}")
        data = msg.as_bytes()
        send_email(ns.smtp, msg)
        return len(data)
    hook = route.webhook
    if hook.template is not None:
        try:
            template = json.loads(hook.template.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise HandoffError(f"{hook.template}: not a JSON template ({exc})") from None
        body = json.dumps(render_template(template, template_values(folder, owner, info))).encode()
    else:
        body = json.dumps(json.loads(body)).encode()  # compact, ASCII-only
    send_webhook(hook, body)
    return len(body)


def after_review(settings: Settings, history: Path, review_folder: Path, at: dt.datetime, stale: list[str], on_stale: str) -> dict:
    """The owner queues of a published review: build them from its picture.duckdb, write the files, deliver. Returns
    the manifest's `notify` entry; never raises (an error is in the entry and printed)."""
    try:
        index = build_files(settings, history, review_folder, at, stale)
        held = bool(stale) and on_stale == "hold"
        deliveries = deliver(settings, history, review_folder / FOLDER, at, held=held)
        return note(index, deliveries, held)
    except Exception as exc:  # noqa: BLE001 - a failed delivery step never fails the review
        err = _error_text(exc)
        print(f"handoff notify: owner queues of {at:%Y-%m-%d %H:%M} not delivered: {err}", file=sys.stderr)
        return {"error": err}


def build_files(settings: Settings, history: Path, review_folder: Path, at: dt.datetime, stale: list[str]) -> dict:
    """Build every owner's queue from the review's picture and write its files (write_files); returns the index."""
    import duckdb

    from handoff_lib.history import acks
    from handoff_lib.history.snapshots import ReviewKey, open_history, previous_review

    from .owners import build_queues

    previous_at = None
    if history.exists():
        h = open_history(history, read_only=True)
        try:
            prev = previous_review(h, ReviewKey.of(settings.site, at))
        finally:
            h.close()
        if prev is not None:
            previous_at = dt.datetime.combine(prev.review_date, dt.time(int(prev.review_time[:2]), int(prev.review_time[2:])),
                                              tzinfo=settings.tz)
    con = duckdb.connect(str(review_folder / "picture.duckdb"), read_only=True)
    try:
        con.execute("SET TimeZone = ?", [settings.timezone])
        queues = build_queues(con, settings, at, previous_at, acks.log_path(history), stale, list(notify_settings(settings).routes))
    finally:
        con.close()
    return write_files(queues, review_folder / FOLDER)


def note(index: dict, deliveries: list[Delivery], held: bool = False) -> dict:
    """The manifest's `notify` entry."""
    return {"folder": FOLDER, "owners": len(index), "held_back": held,
            "deliveries": [{k: v for k, v in d.__dict__.items() if v is not None} for d in deliveries],
            "failed": sum(d.status == "failed" for d in deliveries)}


def _update_manifest(folder: Path, entry: dict) -> None:
    path = folder / "manifest.json"
    if not path.exists():
        return
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest["notify"] = entry
    tmp = path.with_name("manifest.json.part")
    tmp.write_text(json.dumps(manifest, indent=2, default=str), encoding="utf-8")
    os.replace(tmp, path)


def retry_failed(settings: Settings, history: Path, now: dt.datetime | None = None, days: int | None = None) -> list[Delivery]:
    """Send again every failed delivery of the site's reviews of the last `days` days (notify.retry_days), from
    the files each review wrote; updates each review's manifest. Returns what was tried."""
    ns = notify_settings(settings)
    days = ns.retry_days if days is None else days
    now = now or dt.datetime.now(settings.tz)
    since = (now.date() - dt.timedelta(days=days)).isoformat()
    path = log_path(history)
    if not path.exists():
        return []
    con = _log(path)
    try:
        rows = con.execute("""SELECT DISTINCT review_date, review_time, outputs FROM deliveries
                              WHERE site = ? AND status = 'failed' AND review_date >= ? ORDER BY 1, 2""",
                           [settings.site, since]).fetchall()
    finally:
        con.close()
    out = []
    for date, hhmm, outputs in rows:
        folder = Path(outputs)
        at = dt.datetime.combine(dt.date.fromisoformat(date), dt.time(int(hhmm[:2]), int(hhmm[2:])), tzinfo=settings.tz)
        if not (folder / "index.json").exists():
            continue
        tried = deliver(settings, history, folder, at, only_failed=True)
        out.extend(tried)
        with contextlib.suppress(OSError, ValueError):
            index = json.loads((folder / "index.json").read_text(encoding="utf-8"))
            status = {(d["owner"], d["channel"]): d for d in logged(history, settings.site)
                      if d["review_date"] == date and d["review_time"] == hhmm}
            entry = note(index, [Delivery(o, c, d["status"], d["target"] or "", d["error"], d["bytes"]) for (o, c), d in status.items()])
            entry["retried_at"] = _now()
            _update_manifest(folder.parent, entry)
    return out
