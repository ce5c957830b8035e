"""Falsification and boundary-search results in SQLite (stdlib sqlite3, WAL), tables of their own.

Tables (they may share a file with a campaign: the names do not collide)::

    falsify_searches  one row per search: key (mode:optimizer:seed), spec name, digest, spec text,
                      created, and at the end the result (JSON)
    falsify_evals     one row per flown descent: search key, index in the search's order, the
                      point in the unit cube (JSON, exact floats), the parameter values (JSON), the
                      scenario seed, status, outcome, objective (smallest robustness), robustness per
                      requirement (JSON), failure mode, verdict, error, resolved scenario (JSON),
                      worker, wall time, finish time

Each evaluation is committed on its own, so a kill at any instant loses at most the descents in
the air. A search started again with the same key replays the stored evaluations in order
(checking that the optimiser asks for the same points) and flies only what is missing.
"""
from __future__ import annotations

import json
import math
import sqlite3
import time
from pathlib import Path

from harness.campaign.store import (APPLICATION_ID, SQLITE_MAGIC, SqliteStore, check_contents, is_number, is_text,
                                    json_is, check_database_file)
from harness.errors import ConfigError

FALSIFY_TABLES = {"falsify_searches", "falsify_evals"}

# What each column holds (as harness.campaign.store._CONTENT_RULES): an edited or hostile value is
# refused on open by name instead of failing a resume with a traceback
_FALSIFY_RULES = (
    ("falsify_searches", "rowid", [
        *((c, f"typeof({c}) = 'text'", "text") for c in ("key", "name", "mode", "digest", "spec_text")),
        ("created", is_number("created"), "a number"),
        ("result_json", f"(result_json IS NULL OR {json_is('result_json', 'object')})", "a JSON object or NULL")]),
    ("falsify_evals", "rowid", [
        ("key", "typeof(key) = 'text'", "text"),
        ("idx", "typeof(idx) = 'integer' AND idx >= 0", "an integer >= 0"),
        ("u_json", json_is("u_json", "array") + " AND NOT EXISTS (SELECT 1 FROM json_each(CASE WHEN "
                   "json_valid(u_json) THEN u_json ELSE '[]' END) WHERE type NOT IN ('real', 'integer'))",
         "a JSON array of numbers"),
        ("params_json", json_is("params_json", "object"), "a JSON object"),
        ("seed", "typeof(seed) = 'integer' AND seed >= 0", "an integer >= 0"),
        ("status", "typeof(status) = 'text'", "text"),
        ("objective", "(objective IS NULL OR objective < '' OR objective IN ('inf', '-inf', 'nan'))",
         "a number, 'inf', '-inf' or NULL"),
        ("robustness_json", f"(robustness_json IS NULL OR ({json_is('robustness_json', 'array')} AND NOT EXISTS "
                            "(SELECT 1 FROM json_each(CASE WHEN json_valid(robustness_json) THEN robustness_json "
                            "ELSE '[]' END) WHERE type != 'array')))", "a JSON array of arrays or NULL"),
        *((c, is_text(c), "text or NULL") for c in ("outcome", "failure_mode", "verdict", "error", "scenario_json",
                                                      "worker")),
        *((c, is_number(c), "a number or NULL") for c in ("wall_s", "finished"))]),
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS falsify_searches (
    key TEXT PRIMARY KEY, name TEXT NOT NULL, mode TEXT NOT NULL, digest TEXT NOT NULL,
    spec_text TEXT NOT NULL, source TEXT, created REAL NOT NULL, result_json TEXT
);
CREATE TABLE IF NOT EXISTS falsify_evals (
    key TEXT NOT NULL REFERENCES falsify_searches(key), idx INTEGER NOT NULL,
    u_json TEXT NOT NULL, params_json TEXT NOT NULL, seed INTEGER NOT NULL,
    status TEXT NOT NULL, outcome TEXT, objective REAL, robustness_json TEXT, failure_mode TEXT,
    verdict TEXT, error TEXT, scenario_json TEXT, worker TEXT, wall_s REAL, finished REAL,
    PRIMARY KEY (key, idx)
);
"""


def _num(x):
    """JSON-safe float (inf and nan as strings; exact round trip otherwise)."""
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    return x


def _unnum(x):
    if isinstance(x, str) and x in ("inf", "-inf", "nan"):
        return float(x)
    return x


def check_falsify_file(path: Path) -> None:
    """Refuse (ConfigError naming ``path``), before a byte is written, an existing file that is
    neither a falsification database nor an fsil campaign database (whose file the searches may
    share): a folder, an empty file, not SQLite, another application's SQLite database. Reads only."""
    hint = "choose another --db (the file is left as it is)"
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder, not a falsification database; allowed: an fsil falsification or "
                          f"campaign database (SQLite) or a path that does not exist yet")
    if path.exists() and not path.is_file():  # opening a FIFO would block for ever
        raise ConfigError(f"{path}: is not a regular file (a pipe, socket or device), not a falsification database; "
                          f"{hint}")
    try:
        with open(path, "rb") as fh:
            head = fh.read(100)
    except FileNotFoundError:
        return  # a new database
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the falsification database: {exc.strerror or exc}") from None
    if not head:
        raise ConfigError(f"{path}: is empty (0 bytes), not a falsification database; {hint}")
    if not head.startswith(SQLITE_MAGIC):
        raise ConfigError(f"{path}: is not an SQLite database (it starts with {head[:16]!r}), so not a "
                          f"falsification database; {hint}")
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30.0)
        try:
            app = con.execute("PRAGMA application_id").fetchone()[0]
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        finally:
            con.close()
    except sqlite3.Error as exc:
        raise ConfigError(f"{path}: not a usable SQLite database ({exc}); {hint}") from None
    if app == APPLICATION_ID:
        check_database_file(path)  # a campaign's database: sound, or refused by name
    elif app != 0 or not FALSIFY_TABLES <= tables:
        what = f"application id 0x{app:08x}" if app else f"tables {', '.join(sorted(tables)) or '(none)'}"
        raise ConfigError(f"{path}: is another application's SQLite database ({what}), not a falsification or "
                          f"campaign database; {hint}")
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30.0)
        try:
            check_contents(con, path, tables, hint, _FALSIFY_RULES, "falsification database")
        finally:
            con.close()
    except sqlite3.Error as exc:
        raise ConfigError(f"{path}: the falsification database is damaged (SQLite: {exc}); {hint}") from None


class FalsifyStore(SqliteStore):
    def __init__(self, path: str | Path):
        self.path = Path(path)
        check_falsify_file(self.path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"{self.path}: cannot create the falsification database's folder "
                              f"({exc.strerror or exc})") from None
        try:
            self.db = sqlite3.connect(self.path, timeout=30.0)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(_SCHEMA)
            self.db.commit()
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"{self.path}: not a usable SQLite database ({exc})") from None

    def open_search(self, key: str, spec, mode: str) -> int:
        """Register search ``key`` (or check a stored one is the same problem); returns how many
        evaluations are already stored."""
        row = self.db.execute("SELECT digest FROM falsify_searches WHERE key = ?", (key,)).fetchone()
        if row is None:
            with self.db:
                self.db.execute("INSERT INTO falsify_searches (key, name, mode, digest, spec_text, source, created) "
                                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                                (key, spec.name, mode, spec.digest, spec.text, spec.source, time.time()))
            return 0
        if row[0] != spec.digest:
            raise ConfigError(f"{self.path}: search {key!r} was recorded for a different problem (digest {row[0]}, "
                              f"this spec {spec.digest}: scenario, requirements, overrides, parameters, run seed "
                              f"or boundary changed); use another database or a new seed")
        return self.db.execute("SELECT COUNT(*) FROM falsify_evals WHERE key = ?", (key,)).fetchone()[0]

    def stored(self, key: str, idx: int) -> dict | None:
        row = self.db.execute("SELECT u_json, params_json, seed, status, outcome, objective, robustness_json, "
                              "failure_mode, error, scenario_json, wall_s FROM falsify_evals WHERE key = ? AND idx = ?",
                              (key, idx)).fetchone()
        if row is None:
            return None
        names = ("u", "params", "seed", "status", "outcome", "objective", "robustness", "failure_mode", "error",
                 "scenario_json", "wall_s")
        rec = dict(zip(names, row))
        rec["u"] = json.loads(rec["u"])
        rec["params"] = json.loads(rec["params"])
        rec["robustness"] = [[_unnum(x) for x in r] for r in json.loads(rec["robustness"] or "[]")]
        rec["objective"] = math.nan if rec["objective"] is None else _unnum(rec["objective"])
        return rec

    def record(self, key: str, idx: int, u, params: dict, seed: int, rec: dict) -> None:
        obj = rec.get("objective")
        with self.db:
            self.db.execute(
                "INSERT OR REPLACE INTO falsify_evals (key, idx, u_json, params_json, seed, status, outcome, "
                "objective, robustness_json, failure_mode, verdict, error, scenario_json, worker, wall_s, finished) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (key, idx, json.dumps([float(x) for x in u]), json.dumps(params, sort_keys=True), int(seed),
                 rec.get("status", "error"), rec.get("outcome"),
                 None if obj is None or (isinstance(obj, float) and math.isnan(obj)) else
                 (obj if math.isfinite(obj) else str(obj)),
                 json.dumps([[_num(x) for x in r] for r in rec.get("robustness", [])]), rec.get("failure_mode"),
                 rec.get("verdict"), rec.get("error"), rec.get("scenario_json"), rec.get("worker"),
                 rec.get("wall_s"), time.time()))

    def finish(self, key: str, result: dict) -> None:
        with self.db:
            self.db.execute("UPDATE falsify_searches SET result_json = ? WHERE key = ?",
                            (json.dumps(result, default=_num), key))

    def evaluations(self, key: str) -> list[dict]:
        n = self.db.execute("SELECT MAX(idx) FROM falsify_evals WHERE key = ?", (key,)).fetchone()[0]
        return [r for r in (self.stored(key, i) for i in range(0 if n is None else n + 1)) if r is not None]

    def searches(self) -> list[dict]:
        rows = self.db.execute("SELECT key, name, mode, digest, created, result_json FROM falsify_searches "
                               "ORDER BY created").fetchall()
        return [{"key": k, "name": n, "mode": m, "digest": d, "created": c,
                 "result": json.loads(r) if r else None} for k, n, m, d, c, r in rows]
