#!/usr/bin/env python3
"""Generates N paired migrations, the same SQL written in every benchmarked tool's format.

Each migration i creates a table of 3 columns with an index and inserts 10 rows; its down drops
the table. The SQL runs unchanged on SQLite and PostgreSQL. Written under OUT:

  dbstep/       NNNNNN_create_tNNNNNN.up.sql / .down.sql     dbstep and golang-migrate
  dbmate/       NNNNNN_create_tNNNNNN.sql   (-- migrate:up / -- migrate:down; one transaction each)
  sqlmigrate/   NNNNNN_create_tNNNNNN.sql   (-- +migrate Up / -- +migrate Down; one transaction each)
  floor/up.sql, floor/down.sql              one BEGIN ... COMMIT per migration, for `sqlite3 db <`
                                            and `psql -f` (psql sends each statement on its own)
  floor/up_oneq.sql, floor/down_oneq.sql    the same with `\\;` between statements, so psql sends
                                            each migration as ONE simple-query message
  floor/{up,down}_versioned.sqlite.sql      the floor plus golang-migrate's version-row update in
  floor/{up,down}_versioned_oneq.pg.sql     each transaction (what every migration tool must
                                            also write): the cost of bookkeeping alone
  floor/{up,down}_history.sqlite.sql        the same plus the history row dbstep writes in each
  floor/{up,down}_history_oneq.pg.sql       step (its table's shape, the down SQL going up)
  floor/{up,down}_1tx.sql                   every migration in ONE transaction (SQLite), and
  floor/{up,down}_1tx_oneq.sql              the same for psql, one query per migration inside
                                            it: the floor of --single-transaction
  stats.json                                counts and the largest file's size

  gen_migrations.py --n 1000 --out DIR [--formats dbstep,dbmate,sqlmigrate,floor]
"""

import argparse
import hashlib
import json
import os
import shutil
import sys


def statements_up(i: int) -> list[str]:
    t = f"t{i:06d}"
    rows = ",\n  ".join(
        f"({r}, 'row {r} of migration {i}', '2024-01-{r:02d} 12:00:00')" for r in range(1, 11))
    return [
        f"CREATE TABLE {t} (\n  id INTEGER PRIMARY KEY,\n  name TEXT NOT NULL,\n"
        f"  created_at TIMESTAMP NOT NULL\n)",
        f"CREATE INDEX {t}_name_idx ON {t} (name)",
        f"INSERT INTO {t} (id, name, created_at) VALUES\n  {rows}",
    ]


def statements_down(i: int) -> list[str]:
    return [f"DROP TABLE t{i:06d}"]


def body(stmts: list[str]) -> str:
    return "".join(s + ";\n" for s in stmts)


def one_query(stmts: list[str]) -> str:
    # psql's \; appends a semicolon to the query buffer without sending it; the final ';' sends
    # the whole buffer as one simple-query message. Newlines inside statements are kept (psql
    # keeps accumulating the buffer across lines).
    return "BEGIN \\;\n" + "".join(s + " \\;\n" for s in stmts) + "COMMIT;\n"


SQLITE_VERSION_TABLE = ("CREATE TABLE IF NOT EXISTS schema_migrations (version uint64, dirty bool);\n"
                        "CREATE UNIQUE INDEX IF NOT EXISTS version_unique ON schema_migrations "
                        "(version);\n")
PG_VERSION_TABLE = ("CREATE TABLE IF NOT EXISTS schema_migrations "
                    "(version bigint not null primary key, dirty boolean not null);\n")


SQLITE_HISTORY_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_migrations_history (id INTEGER PRIMARY KEY, version "
    "INTEGER NOT NULL, identifier TEXT NOT NULL, direction TEXT NOT NULL, kind TEXT NOT NULL, "
    "checksum TEXT, down_sql BLOB, applied_at TEXT NOT NULL, duration_ms REAL NOT NULL, "
    "applied_by TEXT NOT NULL, dbstep_version TEXT NOT NULL);\n")
PG_HISTORY_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_migrations_history (id bigint NOT NULL PRIMARY KEY, "
    "version bigint NOT NULL, identifier text NOT NULL, direction text NOT NULL, kind text NOT "
    "NULL, checksum text, down_sql bytea, applied_at timestamptz NOT NULL, duration_ms double "
    "precision NOT NULL, applied_by text NOT NULL, dbstep_version text NOT NULL);\n")


def history_row(i: int, direction: str, down: list[str], pg: bool, n: int) -> list[str]:
    """The history row dbstep writes with each step (issue 10), as its drivers write it: the
    file's SHA-256, the down file's bytes (going up), a time stamp, user@host, dbstep's release.
    The id is a literal, as dbstep's PostgreSQL driver sends it (SQLite assigns the rowid): ups
    take 1..n, the downs after them n+1..2n."""
    checksum = hashlib.sha256(body(down if direction == "down" else statements_up(i)).encode())
    down_sql = body(down).encode().hex()
    blob = (f"'\\x{down_sql}'::bytea" if pg else f"x'{down_sql}'") if direction == "up" else "NULL"
    row_id = (str(i if direction == "up" else 2 * n + 1 - i) if pg else "NULL")
    applied_at = "'2026-12-01T10:20:00.123Z'" + ("::timestamptz" if pg else "")
    return [f"INSERT INTO schema_migrations_history (id, version, identifier, direction, kind, "
            f"checksum, down_sql, applied_at, duration_ms, applied_by, dbstep_version) VALUES "
            f"({row_id}, {i}, 'create_t{i:06d}', '{direction}', 'applied', "
            f"'{checksum.hexdigest()}', {blob}, {applied_at}, 1.25, 'bench@localhost', '0.1.0')"]


def version_row(v: int) -> list[str]:
    stmts = ["DELETE FROM schema_migrations"]
    if v > 0:
        stmts.append(f"INSERT INTO schema_migrations (version, dirty) VALUES ({v}, false)")
    return stmts


def write(path: str, text: str, largest: list[int]) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    largest[0] = max(largest[0], len(text.encode()))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, required=True, help="number of migrations (pairs)")
    ap.add_argument("--out", required=True, help="output folder (replaced)")
    ap.add_argument("--formats", default="dbstep,dbmate,sqlmigrate,floor")
    args = ap.parse_args()
    formats = set(args.formats.split(","))
    unknown = formats - {"dbstep", "dbmate", "sqlmigrate", "floor"}
    if unknown or args.n < 1:
        print(f"gen_migrations: bad --formats {sorted(unknown)} or --n {args.n}", file=sys.stderr)
        return 2

    out = args.out
    if os.path.isdir(out):
        shutil.rmtree(out)
    for f in formats:
        os.makedirs(os.path.join(out, f))
    largest = [0]
    floor_up, floor_down, oneq_up, oneq_down = [], [], [], []
    ver_up, ver_down, ver1q_up, ver1q_down = [], [], [], []
    hist_up, hist_down, hist1q_up, hist1q_down = [], [], [], []
    tx_up, tx_down, tx1q_up, tx1q_down = [], [], [], []
    for i in range(1, args.n + 1):
        up, down = statements_up(i), statements_down(i)
        stem = f"{i:06d}_create_t{i:06d}"
        if "dbstep" in formats:
            write(os.path.join(out, "dbstep", stem + ".up.sql"), body(up), largest)
            write(os.path.join(out, "dbstep", stem + ".down.sql"), body(down), largest)
        if "dbmate" in formats:
            write(os.path.join(out, "dbmate", stem + ".sql"),
                  "-- migrate:up\n" + body(up) + "\n-- migrate:down\n" + body(down), largest)
        if "sqlmigrate" in formats:
            write(os.path.join(out, "sqlmigrate", stem + ".sql"),
                  "-- +migrate Up\n" + body(up) + "\n-- +migrate Down\n" + body(down), largest)
        floor_up.append("BEGIN;\n" + body(up) + "COMMIT;\n")
        floor_down.append("BEGIN;\n" + body(down) + "COMMIT;\n")
        oneq_up.append(one_query(up))
        oneq_down.append(one_query(down))
        ver_up.append("BEGIN;\n" + body(up + version_row(i)) + "COMMIT;\n")
        ver_down.append("BEGIN;\n" + body(down + version_row(i - 1)) + "COMMIT;\n")
        ver1q_up.append(one_query(up + version_row(i)))
        ver1q_down.append(one_query(down + version_row(i - 1)))
        hist_up.append("BEGIN;\n" + body(up + history_row(i, "up", down, False, args.n) + version_row(i))
                       + "COMMIT;\n")
        hist_down.append("BEGIN;\n" + body(down + history_row(i, "down", down, False, args.n)
                                            + version_row(i - 1)) + "COMMIT;\n")
        hist1q_up.append(one_query(up + history_row(i, "up", down, True, args.n) + version_row(i)))
        hist1q_down.append(one_query(down + history_row(i, "down", down, True, args.n)
                                     + version_row(i - 1)))
        tx_up.append(body(up))
        tx_down.append(body(down))
        tx1q_up.append(" \\;\n".join(up) + ";\n")
        tx1q_down.append(" \\;\n".join(down) + ";\n")
    if "floor" in formats:
        floor = os.path.join(out, "floor")
        for name, parts in (("up.sql", floor_up), ("down.sql", floor_down[::-1]),
                            ("up_oneq.sql", oneq_up), ("down_oneq.sql", oneq_down[::-1]),
                            ("up_versioned.sqlite.sql", [SQLITE_VERSION_TABLE] + ver_up),
                            ("down_versioned.sqlite.sql", ver_down[::-1]),
                            ("up_versioned_oneq.pg.sql", [PG_VERSION_TABLE] + ver1q_up),
                            ("down_versioned_oneq.pg.sql", ver1q_down[::-1]),
                            ("up_history.sqlite.sql",
                             [SQLITE_VERSION_TABLE, SQLITE_HISTORY_TABLE] + hist_up),
                            ("down_history.sqlite.sql", hist_down[::-1]),
                            ("up_history_oneq.pg.sql", [PG_VERSION_TABLE, PG_HISTORY_TABLE]
                             + hist1q_up),
                            ("down_history_oneq.pg.sql", hist1q_down[::-1]),
                            ("up_1tx.sql", ["BEGIN;\n"] + tx_up + ["COMMIT;\n"]),
                            ("down_1tx.sql", ["BEGIN;\n"] + tx_down[::-1] + ["COMMIT;\n"]),
                            ("up_1tx_oneq.sql", ["BEGIN;\n"] + tx1q_up + ["COMMIT;\n"]),
                            ("down_1tx_oneq.sql", ["BEGIN;\n"] + tx1q_down[::-1] + ["COMMIT;\n"])):
            with open(os.path.join(floor, name), "w", encoding="utf-8") as f:
                f.write("".join(parts))
    with open(os.path.join(out, "stats.json"), "w", encoding="utf-8") as f:
        json.dump({"n": args.n, "largest_file_bytes": largest[0]}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
