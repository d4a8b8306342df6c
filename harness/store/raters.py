"""Rater identity on a shared store (the Label page's logins and its admin view), part of the store
layer (with harness/store/__init__.py, the only modules that write SQL):

- raters with a role (rater | admin) and a password kept as a salted scrypt hash, never as text;
- per-rater queues with a configurable overlap: a fixed share of the pairs (chosen by a hash of the
  pair id, so every rater and process agrees) is to be labelled by `overlap_raters` different
  raters, every other pair by one; each rater sees the pairs still short of raters that they have
  not labelled, in an order of their own (so two raters rarely take the same one-rater pair);
- label changes: a rater changes only their own labels, and every change is kept (who, when,
  old -> new) in `label_changes`.
A rater's labels are ordinary human labels (annotator `human:<rater_id>`), the same records as every
other label in the store.
"""
from __future__ import annotations

import functools
import hashlib
import hmac
import re
import secrets
import time

from ..records import content_hash
from . import Store, StoreError

ROLES = ("rater", "admin")
RATER_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
MIN_PASSWORD = 8
VERDICT_P_A = {"A": 1.0, "B": 0.0, "tie": 0.5}
_SCRYPT = {"n": 2 ** 14, "r": 8, "p": 1}  # OWASP's minimum for scrypt; ~50 ms per check


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    got = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), dklen=32, n=int(n), r=int(r), p=int(p))
    return hmac.compare_digest(got.hex(), digest)


@functools.cache
def _dummy_hash() -> str:
    """Checked against for an unknown rater, so that it costs the same time as a wrong password
    (made on first use, not at import: a scrypt hash is ~50 ms)."""
    return hash_password(secrets.token_hex(8))


def annotator_id(rater_id: str) -> str:
    return f"human:{rater_id}"


def add_rater(store: Store, rater_id: str, password: str, role: str = "rater", display_name: str | None = None) -> None:
    if not RATER_ID_RE.fullmatch(rater_id or ""):
        raise StoreError(f"rater id {rater_id!r}: 1-64 characters A-Z a-z 0-9 . _ @ - starting with a letter or digit")
    if role not in ROLES:
        raise StoreError(f"rater {rater_id}: role {role!r} is not one of {', '.join(ROLES)}")
    if len(password or "") < MIN_PASSWORD:
        raise StoreError(f"rater {rater_id}: the password needs at least {MIN_PASSWORD} characters")
    with store.transaction() as db:
        if db.execute("SELECT 1 FROM raters WHERE rater_id=?", (rater_id,)).fetchone():
            raise StoreError(f"rater {rater_id!r} exists already")
        db.execute("INSERT INTO raters VALUES (?,?,?,?,?)",
                   (rater_id, display_name or rater_id, hash_password(password), role, time.time()))


def set_password(store: Store, rater_id: str, password: str) -> None:
    if len(password or "") < MIN_PASSWORD:
        raise StoreError(f"rater {rater_id}: the password needs at least {MIN_PASSWORD} characters")
    with store.transaction() as db:
        if not db.execute("SELECT 1 FROM raters WHERE rater_id=?", (rater_id,)).fetchone():
            raise StoreError(f"no rater {rater_id!r}")
        db.execute("UPDATE raters SET password_hash=? WHERE rater_id=?", (hash_password(password), rater_id))


def authenticate(store: Store, rater_id: str, password: str) -> dict | None:
    """The rater (id, display_name, role) if the password is theirs, else None."""
    rows = store.query("SELECT * FROM raters WHERE rater_id=?", ((rater_id or "").strip(),))
    ok = verify_password(password or "", rows[0]["password_hash"] if rows else _dummy_hash())
    if not rows or not ok:
        return None
    return {k: rows[0][k] for k in ("rater_id", "display_name", "role")}


def raters(store: Store) -> list[dict]:
    """Every rater, without credentials."""
    return store.query("SELECT rater_id, display_name, role, created_at FROM raters ORDER BY rater_id")


# -- queues with overlap ------------------------------------------------------------------------
def overlap(store: Store) -> tuple[float, int]:
    """(share of pairs labelled by several raters, how many raters each of them gets)."""
    return float(store.meta("label.overlap_fraction", "0.2")), int(store.meta("label.overlap_raters", "2"))


def set_overlap(store: Store, fraction: float, n_raters: int) -> None:
    if not 0.0 <= fraction <= 1.0 or n_raters < 1:
        raise StoreError(f"overlap: fraction {fraction} must be in [0, 1] and raters {n_raters} >= 1")
    store.set_meta("label.overlap_fraction", repr(float(fraction)))
    store.set_meta("label.overlap_raters", str(int(n_raters)))


def in_overlap(pair_id: str, fraction: float) -> bool:
    h = content_hash("overlap", pair_id)  # uniform in [0, 1): the same answer for every rater and process
    return int(h, 16) / 16 ** len(h) < fraction


def needed_raters(pair_id: str, fraction: float, n_raters: int) -> int:
    return n_raters if in_overlap(pair_id, fraction) else 1


_RATER_LABEL = "annotator_kind='human' AND annotator_id IN (SELECT 'human:' || rater_id FROM raters)"


def human_raters_per_pair(store: Store, pair_ids) -> dict[str, int]:
    """Registered raters per pair (imported human labels, e.g. PandaLM's own annotators, do not count:
    the overlap is about this team's raters)."""
    rows = store._query_in(f"SELECT pair_id, COUNT(DISTINCT annotator_id) AS n FROM labels WHERE {_RATER_LABEL}"
                           " AND pair_id IN ({marks}) GROUP BY pair_id", pair_ids)
    return {r["pair_id"]: int(r["n"]) for r in rows}


def rater_queue(store: Store, rater_id: str, candidate_ids: list[str], limit: int = 50) -> list[str]:
    """Of `candidate_ids` (the label source's pairs this rater has not labelled), those still short of
    raters: overlap pairs first (agreement needs them complete), each group in this rater's order."""
    fraction, n = overlap(store)
    have = human_raters_per_pair(store, candidate_ids)
    short = [p for p in dict.fromkeys(candidate_ids) if have.get(p, 0) < needed_raters(p, fraction, n)]
    short.sort(key=lambda p: (not in_overlap(p, fraction), content_hash(rater_id, p)))
    return short[:limit]


def add_rater_label(store: Store, rater_id: str, label, pair) -> str:
    """Store one rater's label unless the pair got all its raters meanwhile (another rater was
    faster): 'saved', 'full' (nothing stored) or 'duplicate' (this rater had labelled it in this
    order). The pair row is locked while its raters are counted, so two raters never both take its
    last place."""
    if label.annotator.id != annotator_id(rater_id):
        raise StoreError(f"rater {rater_id} may store labels only as {annotator_id(rater_id)}, not {label.annotator.id}")
    fraction, n = overlap(store)
    with store.transaction() as db:
        store.add_pairs([pair], db)
        db.execute(f"SELECT pair_id FROM pairs WHERE pair_id=?{store.backend.row_lock}", (pair.pair_id,))
        others = db.execute(f"SELECT COUNT(DISTINCT annotator_id) FROM labels WHERE {_RATER_LABEL} AND pair_id=?"
                            " AND annotator_id<>?", (pair.pair_id, label.annotator.id)).fetchone()[0]
        mine = db.execute("SELECT COUNT(*) FROM labels WHERE pair_id=? AND annotator_id=?",
                          (pair.pair_id, label.annotator.id)).fetchone()[0]
        if not mine and int(others) >= needed_raters(pair.pair_id, fraction, n):
            return "full"
        return "saved" if store.add_labels([label], db=db) else "duplicate"


# -- changes of a rater's own labels ------------------------------------------------------------
def change_label(store: Store, label_id: int, rater_id: str, verdict: str) -> bool:
    """Set the verdict of one of this rater's labels; the old one is kept in label_changes. Returns
    False when the verdict was already that (nothing written)."""
    if verdict not in VERDICT_P_A:
        raise StoreError(f"verdict {verdict!r} is not one of A, B, tie")
    with store.transaction() as db:
        row = db.execute("SELECT label_id, annotator_id, verdict, p_a FROM labels WHERE label_id=?",
                         (int(label_id),)).fetchone()
        if row is None:
            raise StoreError(f"no label {label_id}")
        if row["annotator_id"] != annotator_id(rater_id):
            raise StoreError(f"rater {rater_id} may change only their own labels; label {label_id} is "
                             f"{row['annotator_id']}'s")
        if row["verdict"] == verdict:
            return False
        db.execute("INSERT INTO label_changes (label_id, rater_id, old_verdict, new_verdict, old_p_a, new_p_a,"
                   " changed_at) VALUES (?,?,?,?,?,?,?)",
                   (int(label_id), rater_id, row["verdict"], verdict, row["p_a"], VERDICT_P_A[verdict], time.time()))
        db.execute("UPDATE labels SET verdict=?, p_a=? WHERE label_id=?", (verdict, VERDICT_P_A[verdict], int(label_id)))
    return True


def label_changes(store: Store, rater_id: str | None = None) -> list[dict]:
    if rater_id:
        return store.query("SELECT * FROM label_changes WHERE rater_id=? ORDER BY change_id", (rater_id,))
    return store.query("SELECT * FROM label_changes ORDER BY change_id")


def my_labels(store: Store, rater_id: str, limit: int = 20) -> list[dict]:
    """This rater's newest labels with their prompt (what the Label page offers to change)."""
    return store.query("SELECT l.label_id, l.pair_id, l.verdict, l.shown_order, l.created_at, p.prompt FROM labels l"
                       " JOIN pairs p USING (pair_id) WHERE l.annotator_id=? ORDER BY l.label_id DESC"
                       f" LIMIT {int(limit)}", (annotator_id(rater_id),))


def progress(store: Store) -> list[dict]:
    """Per rater: labels, pairs, overlap pairs labelled, changes, last label time (the admin view)."""
    fraction, n = overlap(store)
    out = []
    for r in raters(store):
        labels = store.query("SELECT pair_id, created_at FROM labels WHERE annotator_id=?",
                             (annotator_id(r["rater_id"]),))
        pairs = {x["pair_id"] for x in labels}
        out.append({"rater": r["rater_id"], "role": r["role"], "labels": len(labels), "pairs": len(pairs),
                    "overlap_pairs": sum(in_overlap(p, fraction) for p in pairs),
                    "changes": len(label_changes(store, r["rater_id"])),
                    "last_label_at": max((x["created_at"] for x in labels), default=None)})
    return out


def overlap_status(store: Store) -> dict:
    """Pairs labelled by raters: how many are overlap pairs, and how many of those have all their raters."""
    fraction, n = overlap(store)
    rows = store.query(f"SELECT pair_id, COUNT(DISTINCT annotator_id) AS n FROM labels WHERE {_RATER_LABEL}"
                       " GROUP BY pair_id")
    ov = [r for r in rows if in_overlap(r["pair_id"], fraction)]
    return {"overlap_fraction": fraction, "overlap_raters": n, "pairs_labelled": len(rows),
            "overlap_pairs_started": len(ov), "overlap_pairs_complete": sum(int(r["n"]) >= n for r in ov)}
