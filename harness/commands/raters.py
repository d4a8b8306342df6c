"""`harness raters add|passwd|list|overlap`: the raters of a shared store (harness/store/raters.py).

The password comes from the environment variable named by --password-env (scripts, CI), else from
a prompt that does not echo; it is stored only as a salted scrypt hash."""
from __future__ import annotations

import getpass
import os

from ..store import raters as R
from ..console import emit
from ..store import Store, StoreError


def add_arguments(p):
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = sub.add_parser("add", help="register a rater")
    add.add_argument("rater_id")
    add.add_argument("--role", choices=R.ROLES, default="rater")
    add.add_argument("--name", default=None, help="display name (default: the id)")
    add.add_argument("--password-env", default=None, metavar="VAR", help="read the password from $VAR")
    pw = sub.add_parser("passwd", help="set a rater's password")
    pw.add_argument("rater_id")
    pw.add_argument("--password-env", default=None, metavar="VAR")
    sub.add_parser("list", help="raters and their progress")
    ov = sub.add_parser("overlap", help="set the share of pairs labelled by several raters")
    ov.add_argument("fraction", type=float)
    ov.add_argument("raters", type=int)


def _password(args) -> str:
    if args.password_env:
        value = os.environ.get(args.password_env)
        if not value:
            raise StoreError(f"--password-env {args.password_env}: the variable is not set")
        return value
    first = getpass.getpass(f"password for {args.rater_id}: ")
    if getpass.getpass("again: ") != first:
        raise StoreError("the two passwords differ; nothing was stored")
    return first


def run(args) -> int:
    store = Store(args.home)
    if args.action == "add":
        R.add_rater(store, args.rater_id, _password(args), args.role, args.name)
        print(f"rater {args.rater_id} ({args.role}) added to {store.db_path}")
    elif args.action == "passwd":
        R.set_password(store, args.rater_id, _password(args))
        print(f"password of {args.rater_id} changed")
    elif args.action == "overlap":
        R.set_overlap(store, args.fraction, args.raters)
        print(f"overlap: {args.fraction:.0%} of pairs get {args.raters} raters")
    else:
        emit(R.progress(store), args.format)
    return 0
