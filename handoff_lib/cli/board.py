"""`handoff board`: serve the board, or manage its users.

    handoff board [--site FILE] [--host H] [--port P] [--users FILE] [--certfile C --keyfile K] [--no-login] ...
    handoff board users add NAME --role ops|status|planner [--name "J. Diaz"] [--password-stdin] [--site FILE | --users FILE]
    handoff board users passwd NAME [--password-stdin] ...
    handoff board users role NAME ROLE ...
    handoff board users remove NAME ...
    handoff board users list ...
"""

from __future__ import annotations

import argparse
import getpass
import sys

from handoff_lib.errors import HandoffError

DEFAULT_SITE = "parameters/demo.yaml"


def _users_file(args: argparse.Namespace):
    from handoff_lib.board.auth import UsersFile, users_file
    from handoff_lib.load.settings import load_settings

    path = users_file(load_settings(args.site), args.users)
    if path is None:
        raise HandoffError(f"{args.site}: the site file names no board users file: add `board: {{users: board_users.yaml}}` "
                           "(relative to the site file) or give --users FILE")
    return UsersFile(path)


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass(f"password for {args.name}: ")
    if getpass.getpass("again: ") != first:
        raise HandoffError("the two passwords differ")
    return first


def users_main(argv: list[str]) -> int:
    from handoff_lib.board.roles import ROLES

    p = argparse.ArgumentParser(prog="handoff board users", description="Board users: names, roles, hashed passwords.")
    p.add_argument("--site", default=DEFAULT_SITE, help="site file whose board: users: names the users file")
    p.add_argument("--users", default="", help="the users file (instead of the site file's)")
    sub = p.add_subparsers(dest="what", required=True)
    add = sub.add_parser("add", help="add a user (asks for the password)")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=list(ROLES))
    add.add_argument("--display-name", "--full-name", dest="display", default="", help='as shown on the board, e.g. "J. Diaz"')
    add.add_argument("--password-stdin", action="store_true", help="read the password from one line of standard input")
    add.add_argument("--replace", action="store_true", help="replace a user of that name")
    pw = sub.add_parser("passwd", help="set a user's password")
    pw.add_argument("name")
    pw.add_argument("--password-stdin", action="store_true")
    rl = sub.add_parser("role", help="change a user's role")
    rl.add_argument("name")
    rl.add_argument("role", choices=list(ROLES))
    rm = sub.add_parser("remove", help="remove a user (their pages stop working at the next load)")
    rm.add_argument("name")
    sub.add_parser("list", help="list users and roles (never passwords)")
    for s in (add, pw, rl, rm, *[sub.choices["list"]]):
        s.add_argument("--site", default=argparse.SUPPRESS)
        s.add_argument("--users", default=argparse.SUPPRESS)
    args = p.parse_args(argv)
    uf = _users_file(args)
    if args.what == "add":
        u = uf.add(args.name, args.role, _password(args), args.display, replace=args.replace)
        print(f"user {u.user} ({u.name}, {u.role}) written to {uf.path}")
    elif args.what == "passwd":
        uf.set_password(args.name, _password(args))
        print(f"password of {args.name} changed in {uf.path} (their sign-ins end)")
    elif args.what == "role":
        uf.set_role(args.name, args.role)
        print(f"{args.name} is now {args.role} in {uf.path} (from their next page load)")
    elif args.what == "remove":
        uf.remove(args.name)
        print(f"user {args.name} removed from {uf.path}")
    else:
        users = uf.users() if uf.path.exists() else {}
        for u in users.values():
            print(f"{u.user:<20} {u.role:<8} {u.name}")
        print(f"{len(users)} user(s) in {uf.path}")
    return 0


def board_main(argv: list[str]) -> int:
    """`handoff board ...`: `users ...` manages users, anything else serves the board."""
    if argv and argv[0] == "users":
        return users_main(argv[1:])
    from handoff_lib.board.server import add_arguments
    from handoff_lib.board.server import board_main as serve_main

    p = add_arguments(argparse.ArgumentParser(prog="handoff board", description=(
        "Serve the handoff board (Voila; 127.0.0.1 by default). `handoff board users --help` manages sign-in users.")))
    return serve_main(p.parse_args(argv))


def main(argv: list[str] | None = None) -> int:
    try:
        return board_main(sys.argv[1:] if argv is None else argv)
    except HandoffError as exc:
        print(f"handoff board: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
