"""``citywarn keys create|list|revoke``, and the admin key ``citywarn run --demo`` makes.

They work on the configured state database (migrated first, as every command
does), so a key made here works at once in any API process on that database.
"""

from __future__ import annotations

import argparse
import getpass
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from alerts import db
from app.auth.keys import KeyNotFound, KeyRecord, KeyStore, parse_token, valid_label
from app.auth.roles import Role
from config.settings import Settings

DEMO_LABEL = "demo admin"
DEMO_CREATOR = "citywarn run --demo"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys_p = sub.add_parser("keys", help="make, list and revoke API keys")
    keys_sub = keys_p.add_subparsers(dest="keys_command", required=True)
    create_p = keys_sub.add_parser("create", help="make a key; it is printed alone on the last line")
    create_p.add_argument("--role", required=True, choices=[r.value for r in Role])
    create_p.add_argument("--label", required=True, type=_label, help="who holds it: the actor it records")
    create_p.add_argument("--expires", type=_days, metavar="DAYS", help="days until it stops working")
    keys_sub.add_parser("list", help="every key, without its secret")
    revoke_p = keys_sub.add_parser("revoke", help="stop a key working, at once")
    revoke_p.add_argument("id")


def run(args: argparse.Namespace, settings: Settings) -> None:
    engine = db.connect(settings.database_url)
    try:
        keys, at = KeyStore(engine), datetime.now(UTC)
        if args.keys_command == "create":
            expires = timedelta(days=args.expires) if args.expires else None
            record, token = keys.create(
                Role(args.role), args.label, expires=expires, created_by=_local_user(), now=at
            )
            print(_describe(record))
            print(token)  # alone on the last line: `citywarn keys create ... | tail -1`
        elif args.keys_command == "list":
            print(_table(keys.list(), at))
        else:
            try:
                record = keys.revoke(args.id, at=at)
            except KeyNotFound:
                raise SystemExit(f"citywarn keys revoke: no key {args.id} (see citywarn keys list)") from None
            print(f"revoked {record.id} ({record.label}) at {record.revoked_at:%Y-%m-%d %H:%M:%S} UTC")
    finally:
        engine.dispose()


def make_demo_key(settings: Settings) -> tuple[str, Path]:
    """A new admin key for the demo, written to ``settings.demo_key_file`` (mode 0600).

    The key a previous demo run left in that file is revoked first, so restarting the
    demo does not pile up working admin keys.
    """
    path = settings.demo_key_file
    engine = db.connect(settings.database_url)
    try:
        keys, at = KeyStore(engine), datetime.now(UTC)
        _revoke_previous(keys, path, at)
        _, token = keys.create(Role.ADMIN, DEMO_LABEL, expires=None, created_by=DEMO_CREATOR, now=at)
    finally:
        engine.dispose()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        os.fchmod(f.fileno(), 0o600)  # a file that existed keeps its mode through O_CREAT: set it
        f.write(token + "\n")
    return token, path


def _revoke_previous(keys: KeyStore, path: Path, at: datetime) -> None:
    try:
        parsed = parse_token(path.read_text().strip())
    except (OSError, UnicodeDecodeError):
        return
    previous = keys.get(parsed[0]) if parsed else None
    if previous is not None and previous.created_by == DEMO_CREATOR:
        keys.revoke(previous.id, at=at)


def _describe(record: KeyRecord) -> str:
    expires = f"{record.expires_at:%Y-%m-%d %H:%M:%S} UTC" if record.expires_at else "never"
    return "\n".join(
        [
            f"id:      {record.id}",
            f"role:    {record.role.value}",
            f"label:   {record.label}",
            f"expires: {expires}",
        ]
    )


def _table(records: list[KeyRecord], at: datetime) -> str:
    def when(ts: datetime | None) -> str:
        return f"{ts:%Y-%m-%d %H:%M}" if ts else "-"

    rows = [("ID", "ROLE", "STATE", "CREATED", "EXPIRES", "REVOKED", "LABEL")]
    rows += [
        (r.id, r.role.value, r.state(at), when(r.created_at), when(r.expires_at), when(r.revoked_at), r.label)
        for r in records
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join(
        "  ".join([*(c.ljust(w) for c, w in zip(row, widths, strict=False)), row[-1]]) for row in rows
    )


def _label(value: str) -> str:
    if not valid_label(value):
        raise argparse.ArgumentTypeError(
            "1..100 printable characters, no tabs, line breaks or control characters"
        )
    return value


def _days(value: str) -> float:
    try:
        days = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of days: {value!r}") from None
    if not 0 < days <= 3650:
        raise argparse.ArgumentTypeError("must be more than 0 and at most 3650 days")
    return days


def _local_user() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"citywarn keys create (local user {user})"
