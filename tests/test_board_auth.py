"""Board sign-in: the users file with hashed passwords, the `handoff board users` command, and the rules
for when the server needs a sign-in (loopback by default; another host refuses without one unless
--no-login)."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import pytest
import yaml

from handoff_lib.board import auth
from handoff_lib.board.server import NO_LOGIN_BANNER, configure, is_loopback, tls_context
from handoff_lib.cli.board import main as board_cli
from handoff_lib.errors import HandoffError

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def test_a_password_is_stored_as_a_salted_scrypt_hash():
    h1, h2 = auth.hash_password("correct horse"), auth.hash_password("correct horse")
    assert h1.startswith("scrypt$") and "correct horse" not in h1 and h1 != h2
    assert auth.check_password("correct horse", h1) and not auth.check_password("correct horsf", h1)
    assert not auth.check_password("correct horse", "plain-text-password")
    with pytest.raises(HandoffError, match="too short"):
        auth.hash_password("short")


def test_the_users_file_holds_names_roles_and_hashes_only_readable_by_its_owner(tmp_path):
    uf = auth.UsersFile(tmp_path / "users.yaml")
    uf.add("jdiaz", "ops", "secret-pass-1", "J. Diaz")
    uf.add("sam", "status", "sales-pass-22")
    text = (tmp_path / "users.yaml").read_text()
    assert "secret-pass-1" not in text and "sales-pass-22" not in text
    assert stat.S_IMODE(os.stat(tmp_path / "users.yaml").st_mode) == 0o600
    assert uf.verify("jdiaz", "secret-pass-1").name == "J. Diaz"
    assert uf.verify("jdiaz", "wrong-pass-1") is None and uf.verify("nobody", "secret-pass-1") is None
    stamp = uf.get("jdiaz").stamp
    uf.set_password("jdiaz", "another-pass-2")
    assert uf.get("jdiaz").stamp != stamp  # an old sign-in cookie no longer matches
    uf.set_role("sam", "planner")
    assert uf.get("sam").role == "planner"
    uf.remove("sam")
    assert set(uf.users()) == {"jdiaz"}
    with pytest.raises(HandoffError, match="exists"):
        uf.add("jdiaz", "ops", "secret-pass-1")
    with pytest.raises(HandoffError, match="not one of ops, status, planner"):
        uf.add("pat", "admin", "secret-pass-1")


def test_a_bad_entry_in_the_users_file_names_the_file_and_the_user(tmp_path):
    path = tmp_path / "users.yaml"
    path.write_text(yaml.safe_dump({"users": {"jdiaz": {"role": "boss", "password": auth.hash_password("secret-pass-1")}}}))
    with pytest.raises(HandoffError, match=r"users.yaml: user 'jdiaz': role 'boss' is not one of"):
        auth.UsersFile(path).users()
    path.write_text(yaml.safe_dump({"users": {"jdiaz": {"role": "ops"}}}))
    with pytest.raises(HandoffError, match="needs a role and a password"):
        auth.UsersFile(path).users()


def site_with_users(tmp_path: Path, site: Path) -> Path:
    raw = yaml.safe_load(site.read_text())
    raw["board"] = {"users": "board_users.yaml"}
    path = tmp_path / "site_users.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_the_users_command_adds_a_user_to_the_file_the_site_names(tmp_path, site, monkeypatch, capsys):
    site_file = site_with_users(tmp_path, site)
    monkeypatch.setattr("sys.stdin", io.StringIO("secret-pass-1\n"))
    assert board_cli(["users", "add", "jdiaz", "--role", "ops", "--display-name", "J. Diaz", "--password-stdin",
                      "--site", str(site_file)]) == 0
    assert "written to" in capsys.readouterr().out
    assert auth.UsersFile(tmp_path / "board_users.yaml").verify("jdiaz", "secret-pass-1").role == "ops"
    assert board_cli(["users", "list", "--site", str(site_file)]) == 0
    listed = capsys.readouterr().out
    assert "jdiaz" in listed and "ops" in listed and "scrypt" not in listed
    assert board_cli(["users", "add", "x", "--role", "ops", "--password-stdin", "--site", str(site)]) == 2  # no users file named
    assert "names no board users file" in capsys.readouterr().err


@pytest.fixture
def source(site):
    from handoff_lib.board import resolve_source

    return resolve_source(str(site))


def test_loopback_without_a_users_file_serves_the_local_user_as_ops(source):
    cfg = configure(source, "127.0.0.1")
    assert cfg.mode == "local" and cfg.banner == ""
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost") and not is_loopback("0.0.0.0")


def test_another_host_without_sign_in_is_refused_unless_no_login(source):
    with pytest.raises(HandoffError, match="refusing to serve the board on 0.0.0.0 without sign-in"):
        configure(source, "0.0.0.0")
    cfg = configure(source, "0.0.0.0", no_login=True)
    assert cfg.mode == "open" and cfg.banner == NO_LOGIN_BANNER and cfg.open_role == "status"


def test_a_users_file_means_sign_in_on_any_host(tmp_path, site):
    from handoff_lib.board import resolve_source

    site_file = site_with_users(tmp_path, site)
    with pytest.raises(HandoffError, match="no board users file"):
        configure(resolve_source(str(site_file)), "127.0.0.1")
    auth.UsersFile(tmp_path / "board_users.yaml").add("jdiaz", "ops", "secret-pass-1")
    for host in ("127.0.0.1", "0.0.0.0"):
        assert configure(resolve_source(str(site_file)), host).mode == "users"
    with pytest.raises(HandoffError, match="--no-login with a users file"):
        configure(resolve_source(str(site_file)), "0.0.0.0", no_login=True)


def test_the_cli_refuses_an_open_network_board_with_exit_2(site, capsys):
    from handoff_lib.cli.main import main as handoff

    assert handoff(["board", "--site", str(site), "--host", "0.0.0.0"]) == 2
    assert "refusing to serve the board on 0.0.0.0 without sign-in" in capsys.readouterr().err


def test_tls_needs_both_a_certificate_and_a_key():
    assert tls_context("", "") is None
    assert tls_context(str(FIXTURES / "board_tls" / "cert.pem"), str(FIXTURES / "board_tls" / "key.pem")) is not None
    with pytest.raises(HandoffError, match="both --certfile and --keyfile"):
        tls_context(str(FIXTURES / "board_tls" / "cert.pem"), "")
    with pytest.raises(HandoffError, match="cannot load the TLS certificate"):
        tls_context(str(FIXTURES / "board_tls" / "key.pem"), str(FIXTURES / "board_tls" / "key.pem"))
