"""Campaign results in SQLite (stdlib sqlite3, WAL): one campaign per database file.

Tables::

    campaign   the spec (text, source, digest of what decides the runs), scenario, creation time
    runs       one row per planned run: grid point, parameters (JSON), seed, status
               (pending | done | error), outcome, metrics, failure mode, verdict, error text,
               the fully resolved scenario (JSON), worker, wall time, finish time; and the claim
               (claimed_by, claimed_at, claims) of the campaign process flying it
    blobs      per run: decimated trajectory (npz, every run), full telemetry (npz, failed runs)
    robustness per run and requirement of the spec's ``requirements``: STL robustness (the
               requirement's unit; NULL when it could not be evaluated) and the instant of worst (s)

The file is marked as fsil's (``PRAGMA application_id``) and checked on every open: a file that is
empty, not SQLite, damaged (``PRAGMA quick_check``) or another application's database is refused
with a ConfigError naming it, before anything is written to it. A new database is built in a
temporary file and linked into place, so a half-made database never exists under its name.

The whole plan is written in one transaction before the first run flies. Campaign processes on
one database share the work: each takes (claims) a pending run in a write transaction before
flying it, so every run is claimed by exactly one process; a claim whose process is gone (same
host, pid no longer alive) or that has not been renewed for ``stale_s`` is taken over. Each result
is committed on its own, and only by the process holding the claim, so a kill -9 at any instant
loses at most the runs that were in the air: they are still ``pending`` and fly again.
"""
from __future__ import annotations

import json
import math
import os
import socket
import sqlite3
import time
from pathlib import Path

import numpy as np

from harness.errors import ConfigError
from harness.safetext import printable

METRIC_COLUMNS = ("v_vertical", "v_horizontal", "tilt_deg", "propellant_kg", "position_error_m", "touchdown_t_s",
                  "first_lrf_alt_m", "first_lrf_t_s", "pnr_t_s", "pnr_alt_m", "max_est_error_m", "sim_time_s",
                  "wall_s")
INT_COLUMNS = ("lrf_rejected",)
TEXT_COLUMNS = ("outcome", "failure_mode", "verdict", "error", "scenario_json", "worker")
_RECORD_COLUMNS = (*METRIC_COLUMNS, *INT_COLUMNS, *TEXT_COLUMNS, "telemetry_sha256")

APPLICATION_ID = 0x6673696C  # "fsil": PRAGMA application_id of every campaign database
SQLITE_MAGIC = b"SQLite format 3\x00"
_CLAIM_COLUMNS = (("claimed_by", "TEXT"), ("claimed_at", "REAL"), ("claims", "INTEGER NOT NULL DEFAULT 0"))
# columns added after the first schema; _upgrade adds them to an older database
_ADDED_COLUMNS = (*_CLAIM_COLUMNS, ("telemetry_sha256", "TEXT"))
# PRAGMA user_version: 0 = written before versions were recorded (upgraded in place on open),
# 2 = compact blobs (worker.pack_columns) and the telemetry digest of every run
SCHEMA_VERSION = 2
COMPACT_MAX_BYTES = 256 * 2**20  # a finished campaign's file up to this size is VACUUMed (Store.compact)

_ROBUSTNESS_SCHEMA = """
CREATE TABLE IF NOT EXISTS robustness (
    run_id INTEGER NOT NULL REFERENCES runs(run_id), requirement TEXT NOT NULL, robustness REAL, t_worst_s REAL,
    PRIMARY KEY (run_id, requirement)
);"""

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS campaign (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    name TEXT NOT NULL, source TEXT, spec_text TEXT NOT NULL, digest TEXT NOT NULL,
    scenario TEXT NOT NULL, n_runs INTEGER NOT NULL, created REAL NOT NULL, axes_json TEXT NOT NULL,
    dispersed_json TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    run_id INTEGER PRIMARY KEY, point_index INTEGER NOT NULL, point_json TEXT NOT NULL,
    params_json TEXT NOT NULL, sampled_json TEXT NOT NULL, seed INTEGER NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    {", ".join(f"{c} REAL" for c in METRIC_COLUMNS)},
    {", ".join(f"{c} INTEGER" for c in INT_COLUMNS)},
    {", ".join(f"{c} TEXT" for c in TEXT_COLUMNS)},
    finished REAL,
    {", ".join(f"{c} {t}" for c, t in _ADDED_COLUMNS)}
);
CREATE INDEX IF NOT EXISTS runs_status ON runs(status);
CREATE INDEX IF NOT EXISTS runs_claim ON runs(status, claimed_by, run_id);
CREATE TABLE IF NOT EXISTS blobs (
    run_id INTEGER PRIMARY KEY REFERENCES runs(run_id), traj BLOB, telemetry BLOB
);
{_ROBUSTNESS_SCHEMA}
"""


def worker_id() -> str:
    """Who holds a claim: ``host:pid:start`` (start: the process's start time, so a reused pid
    is not mistaken for the campaign that claimed the run)."""
    return f"{socket.gethostname()}:{os.getpid()}:{_start_time(os.getpid())}"


def _start_time(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return "?"


def _owner_gone(owner: str) -> bool:
    """True when ``owner`` (a worker_id) is a process of this host that no longer runs."""
    host, _, rest = owner.partition(":")
    pid_s, _, start = rest.partition(":")
    if host != socket.gethostname() or not pid_s.isdigit():
        return False  # another machine: only the stale timeout can tell
    pid = int(pid_s)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return start not in ("?", "") and _start_time(pid) not in (start, "?")


def check_database_file(path: Path) -> None:
    """Refuse (ConfigError naming ``path``) a file that is not a sound fsil campaign database:
    empty, not SQLite, damaged or truncated, or another application's. Reads only."""
    path = Path(path)
    if path.exists() and not path.is_dir() and not path.is_file():  # opening a FIFO would block for ever
        raise ConfigError(f"{path}: is not a regular file (a pipe, socket or device), not a campaign database; "
                          f"allowed: an fsil campaign database (SQLite) or a path that does not exist yet")
    try:
        with open(path, "rb") as fh:
            head = fh.read(100)
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, not a campaign database; allowed: an fsil campaign database "
                          f"(SQLite) or a path that does not exist yet") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the campaign database: {exc.strerror or exc}") from None
    hint = "choose another --db, or move the file away to start a new campaign there (it is left as it is)"
    if not head:
        raise ConfigError(f"{path}: is empty (0 bytes), not an fsil campaign database; {hint}")
    if not head.startswith(SQLITE_MAGIC):
        raise ConfigError(f"{path}: is not an SQLite database (it starts with {head[:16]!r}), so not an fsil "
                          f"campaign database; {hint}")
    if len(head) < 100:
        raise ConfigError(f"{path}: is truncated ({len(head)} bytes, shorter than an SQLite header); {hint}")
    try:
        con = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=30.0)
    except sqlite3.Error as exc:
        raise ConfigError(f"{path}: cannot be opened as an SQLite database ({exc}); {hint}") from None
    try:
        app = con.execute("PRAGMA application_id").fetchone()[0]
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if app != APPLICATION_ID and not (app == 0 and {"campaign", "runs", "blobs"} <= tables):
            what = f"application id 0x{app:08x}" if app else f"tables {', '.join(sorted(tables)) or '(none)'}"
            raise ConfigError(f"{path}: is another application's SQLite database ({what}), not an fsil campaign "
                              f"database; {hint}")
        version = con.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise ConfigError(f"{path}: campaign database schema version {version} was written by a newer fsil; "
                              f"this fsil reads schema versions 0 to {SCHEMA_VERSION}: update fsil to open it")
        for table, need in _REQUIRED_COLUMNS.items():
            have = {r[1] for r in con.execute(f"PRAGMA table_info({table})")}
            if not need <= have:
                raise ConfigError(f"{path}: table {table} lacks the columns {', '.join(sorted(need - have))}: not an "
                                  f"fsil campaign database (or one from an incompatible version); {hint}")
        # a truncated file: shorter than the pages its header counts (when that count is valid)
        page = int.from_bytes(head[16:18], "big")
        page = 65536 if page == 1 else page
        pages = int.from_bytes(head[28:32], "big")
        size = path.stat().st_size
        if pages and head[24:28] == head[92:96] and size < pages * page:
            raise ConfigError(f"{path}: the campaign database is damaged or truncated (its header counts {pages} pages "
                              f"of {page} bytes, {pages * page} bytes, the file has {size}); {hint}")
        # the structure of the tables every command reads (the blobs, most of a large file, are
        # checked as they are read: reading a damaged one is refused the same way)
        bad = []
        for table in ("campaign", "runs", "robustness"):
            if table in tables:
                bad += [r[0] for r in con.execute(f"PRAGMA quick_check({table})") if r[0] != "ok"]
        bad = bad or ["ok"]
        if bad != ["ok"]:
            raise ConfigError(f"{path}: the campaign database is damaged (SQLite quick_check: "
                              f"{'; '.join(map(str, bad))[:300]}); {hint}")
        check_contents(con, path, tables, hint)
    except sqlite3.DatabaseError as exc:
        raise ConfigError(f"{path}: the campaign database is damaged or truncated (SQLite: {exc}); {hint}") from None
    finally:
        con.close()


def json_is(col: str, kind: str) -> str:
    """SQL: ``col`` holds JSON of type ``kind`` (json_type() raises on malformed JSON: asked only when valid)."""
    return f"coalesce(CASE WHEN json_valid({col}) THEN json_type({col}) END = '{kind}', 0)"


def is_number(col: str) -> str:
    """SQL: ``col`` is a number or NULL (SQLite orders every number before every text and blob:
    one comparison, cheaper than typeof() on a 100,000-run table)."""
    return f"({col} IS NULL OR {col} < '')"


def is_text(col: str) -> str:
    """SQL: ``col`` is text or NULL (numbers sort before text, blobs after)."""
    return f"({col} IS NULL OR ({col} >= '' AND {col} < x''))"


# What each column of a sound database holds (SQLite keeps any type in any column: an edited or
# hostile file can hold text in a number column, a blob in a text one, JSON that is not JSON):
# (table, key column, [(column, SQL condition, what is allowed)])
_CONTENT_RULES = (
    ("campaign", "id", [
        ("name", "typeof(name) = 'text'", "text"), ("spec_text", "typeof(spec_text) = 'text'", "text"),
        ("scenario", "typeof(scenario) = 'text'", "text"), ("digest", "typeof(digest) = 'text'", "text"),
        ("n_runs", "typeof(n_runs) = 'integer' AND n_runs >= 0", "an integer >= 0"),
        ("axes_json", json_is("axes_json", "array") + " AND NOT EXISTS (SELECT 1 FROM json_each(CASE WHEN "
                      "json_valid(axes_json) THEN axes_json ELSE '[]' END) WHERE type != 'object')",
         "a JSON array of objects"),
        ("dispersed_json", json_is("dispersed_json", "array"), "a JSON array")]),
    ("runs", "run_id", [
        ("run_id", "typeof(run_id) = 'integer' AND run_id >= 0", "an integer >= 0"),
        ("point_index", "typeof(point_index) = 'integer' AND point_index >= 0", "an integer >= 0"),
        ("point_json", json_is("point_json", "object"), "a JSON object"),
        ("params_json", json_is("params_json", "object"), "a JSON object"),
        ("sampled_json", json_is("sampled_json", "object"), "a JSON object"),
        ("seed", "typeof(seed) = 'integer' AND seed >= 0", "an integer >= 0"),
        ("status", "coalesce(status IN ('pending', 'done', 'error'), 0)", "pending, done or error"),
        *((c, is_number(c), "a number or NULL") for c in METRIC_COLUMNS),
        *((c, f"({c} IS NULL OR typeof({c}) = 'integer')", "an integer or NULL") for c in INT_COLUMNS),
        *((c, is_text(c), "text or NULL") for c in (*TEXT_COLUMNS, "telemetry_sha256"))]),
    # typeof(), not a comparison, for the blobs: it reads no blob's bytes
    ("blobs", "run_id", [(c, f"typeof({c}) IN ('blob', 'null')", "a blob or NULL") for c in ("traj", "telemetry")]),
    ("robustness", "run_id", [
        ("requirement", "typeof(requirement) = 'text'", "text"),
        ("robustness", is_number("robustness"), "a number or NULL"),
        ("t_worst_s", is_number("t_worst_s"), "a number or NULL")]),
)


def check_contents(con: sqlite3.Connection, path: Path, tables: set, hint: str, content_rules=_CONTENT_RULES,
                    what: str = "campaign database") -> None:
    """Refuse (ConfigError naming the table, the row and the column) a value of the wrong type or
    form (``content_rules``, laid out as :data:`_CONTENT_RULES`), or a plan without its campaign
    row. One scan per table that stops at the first bad row (0.3-0.5 s on a 100,000-run
    database); only then is the row asked which column it is."""
    for table, key, rules in content_rules:
        if table not in tables:
            continue
        have = {r[1] for r in con.execute(f"PRAGMA table_info({table})")}
        rules = [r for r in rules if r[0] in have]  # older schemas lack some columns
        conds = [f"({cond})" for _c, cond, _a in rules]  # each is true or false, never NULL
        bad = con.execute(f"SELECT quote({key}) FROM {table} WHERE NOT ({' AND '.join(conds)}) LIMIT 1").fetchone()
        if bad is None:
            continue
        case = " ".join(f"WHEN NOT {c} THEN {i}" for i, c in enumerate(conds))
        i = con.execute(f"SELECT CASE {case} END FROM {table} WHERE {key} IS {bad[0]} LIMIT 1").fetchone()[0]
        column, _cond, allowed = rules[i]
        value = con.execute(f"SELECT quote({column}) FROM {table} WHERE {key} IS {bad[0]} LIMIT 1").fetchone()[0]
        raise ConfigError(f"{path}: the {what} holds a bad value: table {table}, {key} {bad[0]}, "
                          f"column {column} = {printable(str(value), 60)}; allowed: {allowed}; {hint}")
    if content_rules is _CONTENT_RULES and "campaign" in tables and "runs" in tables:
        n_campaign = con.execute("SELECT count(*) FROM campaign").fetchone()[0]
        if n_campaign == 0 and con.execute("SELECT 1 FROM runs LIMIT 1").fetchone():
            raise ConfigError(f"{path}: the campaign database holds planned runs but no campaign row (its spec); "
                              f"{hint}")


def _create_database(path: Path) -> None:
    """Build an empty campaign database next to ``path`` and link it into place (atomic: another
    process either sees no file or a complete one). A file already there is left alone."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.new")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(tmp)
        try:
            con.execute("PRAGMA page_size=1024")  # the blobs' last overflow page wastes half of 1 kB, not of 4 kB
            con.execute("PRAGMA journal_mode=WAL")
            con.execute(f"PRAGMA application_id={APPLICATION_ID}")
            con.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            con.executescript(_SCHEMA)
            con.commit()
        finally:
            con.close()
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another campaign made it first: use theirs
    except (OSError, sqlite3.Error) as exc:  # no folder there, no permission, a read-only file system
        raise ConfigError(f"{path}: cannot create the campaign database ({getattr(exc, 'strerror', None) or exc}); "
                          f"allowed: a path in a folder this user can write") from None
    finally:
        for p in (tmp, tmp.with_name(tmp.name + "-wal"), tmp.with_name(tmp.name + "-shm")):
            try:
                p.unlink()
            except (FileNotFoundError, NotADirectoryError):  # never made (or no folder to make it in)
                pass


_REQUIRED_COLUMNS = {
    "campaign": {"name", "source", "spec_text", "digest", "scenario", "n_runs", "created", "axes_json",
                 "dispersed_json"},
    "runs": {"run_id", "point_index", "point_json", "params_json", "sampled_json", "seed", "status", "finished",
             *METRIC_COLUMNS, *INT_COLUMNS, *TEXT_COLUMNS},
    "blobs": {"run_id", "traj", "telemetry"},
}


class SqliteStore:
    """A results database held open as ``self.db`` (sqlite3): closed by ``close()`` or at the end
    of a ``with`` block. Base of the campaign store and the falsification store."""

    db: sqlite3.Connection

    def close(self) -> None:
        self.db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Store(SqliteStore):
    """One campaign database. ``create``: make the file when it does not exist (never over an
    existing one); an existing file is checked first (:func:`check_database_file`)."""

    def __init__(self, path: str | Path, create: bool = True, *, stale_s: float = 900.0):
        self.path = Path(path)
        self.stale_s = stale_s
        self.owner = worker_id()
        if not self.path.exists():
            if not create:
                raise ConfigError(f"{self.path}: campaign database not found")
            _create_database(self.path)
        check_database_file(self.path)
        try:
            self.db = sqlite3.connect(f"file:{self.path}?mode=rw", uri=True, timeout=60.0)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across process kills
            self._upgrade()
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"{self.path}: cannot open the campaign database for writing (SQLite: {exc})") from None

    def _upgrade(self) -> None:
        """Databases of an older schema version (0: before versions were recorded): add the claim
        columns, the telemetry digest and fsil's mark; before requirements existed: the robustness
        table. Their ``.npz`` blobs stay readable (worker.unpack_columns)."""
        cols = {r[1] for r in self.db.execute("PRAGMA table_info(runs)")}
        missing = [(c, t) for c, t in _ADDED_COLUMNS if c not in cols]
        no_robustness = self.db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND "
                                        "name='robustness'").fetchone() is None
        if (missing or no_robustness or self.db.execute("PRAGMA application_id").fetchone()[0] != APPLICATION_ID
                or self.db.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION):
            with self.db:
                for c, t in missing:
                    self.db.execute(f"ALTER TABLE runs ADD COLUMN {c} {t}")
                self.db.execute("CREATE INDEX IF NOT EXISTS runs_claim ON runs(status, claimed_by, run_id)")
                self.db.execute(_ROBUSTNESS_SCHEMA)
                self.db.execute(f"PRAGMA application_id={APPLICATION_ID}")
                self.db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    # campaign ------------------------------------------------------------------------------
    def campaign(self) -> dict | None:
        row = self.db.execute("SELECT name, source, spec_text, digest, scenario, n_runs, created, axes_json, "
                              "dispersed_json FROM campaign").fetchone()
        if row is None:
            return None
        keys = ("name", "source", "spec_text", "digest", "scenario", "n_runs", "created", "axes", "dispersed")
        d = dict(zip(keys, row))
        try:
            d["axes"] = json.loads(d["axes"])
            d["dispersed"] = json.loads(d["dispersed"])
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{self.path}: the campaign record is damaged (axes/dispersions are not JSON: {exc}); "
                              f"the file was not changed") from None
        if not isinstance(d["spec_text"], str) or not isinstance(d["scenario"], str):
            raise ConfigError(f"{self.path}: the campaign record is damaged (spec text or scenario is not text); "
                              f"the file was not changed")
        return d

    def init_campaign(self, spec, planned) -> bool:
        """Write the spec and the plan (first start) or check they match (resume). True when resuming.
        One write transaction: of two campaigns starting together on a new file, one plans and the
        other finds the plan."""
        axes = [{"name": a.name, "path": a.path, "labels": list(a.labels), "numeric": a.numeric,
                 "values": list(a.values) if a.numeric else None} for a in spec.axes]
        self.db.execute("BEGIN IMMEDIATE")
        try:
            have = self.campaign()
            if have is None:
                self.db.execute("INSERT INTO campaign VALUES (1,?,?,?,?,?,?,?,?,?)",
                                (spec.name, spec.source, spec.text, spec.digest, spec.scenario, len(planned),
                                 time.time(), json.dumps(axes), json.dumps([d.path for d in spec.dispersions])))
                self.db.executemany(
                    "INSERT INTO runs (run_id, point_index, point_json, params_json, sampled_json, seed) "
                    "VALUES (?,?,?,?,?,?)", _plan_rows(planned))
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        if have is not None and have["digest"] != spec.digest:
            raise ConfigError(f"{self.path}: holds campaign {have['name']!r} planned from a different spec "
                              f"(digest {have['digest']} vs {spec.digest} for {spec.source}); choose another "
                              f"--db or delete the file to start over")
        return have is not None

    # runs ----------------------------------------------------------------------------------
    def pending(self, retry_errors: bool = False) -> list[dict]:
        """Runs not finished (``pending``; with ``retry_errors`` also ``error``), claimed or not."""
        states = ("pending", "error") if retry_errors else ("pending",)
        q = f"SELECT run_id, params_json, seed FROM runs WHERE status IN ({','.join('?' * len(states))}) " \
            "ORDER BY run_id"
        return [{"run_id": r, "overrides": json.loads(p), "seed": s} for r, p, s in self.db.execute(q, states)]

    def counts(self) -> dict[str, int]:
        return dict(self.db.execute("SELECT status, COUNT(*) FROM runs GROUP BY status").fetchall())

    def claim(self, n: int = 1, *, errors_before: float | None = None) -> list[dict]:
        """Take up to ``n`` runs to fly, atomically (one write transaction): pending runs nobody
        holds, runs whose holder is gone or silent for ``stale_s``, and, when ``errors_before``
        is a time, runs that ended in an error before it (``--retry-errors``, once each)."""
        now = time.time()
        self.db.execute("BEGIN IMMEDIATE")
        try:
            # free runs first (the common case, by index and LIMIT); held runs only when those run out
            rows = self.db.execute(
                "SELECT run_id, params_json, seed, status, claimed_by, claimed_at FROM runs "
                "WHERE status='pending' AND claimed_by IS NULL ORDER BY run_id LIMIT ?", (n,)).fetchall()
            if len(rows) < n:
                rows += self.db.execute(
                    "SELECT run_id, params_json, seed, status, claimed_by, claimed_at FROM runs "
                    "WHERE (status='pending' AND claimed_by IS NOT NULL AND claimed_by != ?) "
                    "OR (status='error' AND ? IS NOT NULL AND finished < ?) ORDER BY run_id",
                    (self.owner, errors_before, errors_before)).fetchall()
            out = []
            gone: dict[str, bool] = {}
            for rid, params, seed, status, by, at in rows:
                if len(out) >= n:
                    break
                if status == "pending" and by is not None:
                    if by not in gone:
                        gone[by] = _owner_gone(by)
                    if not (gone[by] or at is None or now - at > self.stale_s):
                        continue
                out.append({"run_id": rid, "overrides": json.loads(params), "seed": seed})
            self.db.executemany("UPDATE runs SET status='pending', claimed_by=?, claimed_at=?, claims=claims+1 "
                                "WHERE run_id=?", [(self.owner, now, r["run_id"]) for r in out])
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return out

    def held_by_others(self) -> dict[str, int]:
        """Pending runs held by other live campaign processes: {holder: count}."""
        now = time.time()
        out: dict[str, int] = {}
        for by, at, k in self.db.execute("SELECT claimed_by, MIN(claimed_at), COUNT(*) FROM runs WHERE "
                                         "status='pending' AND claimed_by IS NOT NULL AND claimed_by != ? "
                                         "GROUP BY claimed_by", (self.owner,)):
            if not _owner_gone(by) and at is not None and now - at <= self.stale_s:
                out[by] = k
        return out

    def compact(self, max_bytes: int = COMPACT_MAX_BYTES) -> bool:
        """VACUUM a finished campaign's file when it is at most ``max_bytes`` (a few seconds):
        rows grow from plan to result in place, which leaves about a third of the runs table's
        pages empty. False when skipped (too big, or another process still has it open)."""
        if self.path.stat().st_size > max_bytes:
            return False
        self.db.execute("PRAGMA busy_timeout=1000")  # another campaign process reading: skip, do not wait
        try:
            self.db.execute("VACUUM")
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.OperationalError:
            return False
        finally:
            self.db.execute("PRAGMA busy_timeout=60000")
        return True

    def renew(self) -> None:
        """Refresh this process's claims (it is alive and still flying them)."""
        with self.db:
            self.db.execute("UPDATE runs SET claimed_at=? WHERE status='pending' AND claimed_by=?",
                            (time.time(), self.owner))

    def release(self) -> None:
        """Give back this process's unfinished claims (interrupted: another process may fly them)."""
        with self.db:
            self.db.execute("UPDATE runs SET claimed_by=NULL, claimed_at=NULL WHERE status='pending' AND "
                            "claimed_by=?", (self.owner,))

    def record(self, res: dict) -> bool:
        """Store a run's result, if this process still holds its claim (or nobody does). False
        when another process took the run over: its result is the one kept."""
        return self.record_many([res])[0]

    def record_many(self, recs: list[dict]) -> list[bool]:
        """Store several runs' results in one write transaction (one commit, one WAL sync for a
        batch); per record, as :meth:`record`, True when it was stored."""
        now = time.time()
        kept = []
        with self.db:
            for res in recs:
                cols = [c for c in _RECORD_COLUMNS if c in res]
                cur = self.db.execute(
                    f"UPDATE runs SET status=?, finished=?, {', '.join(f'{c}=?' for c in cols)}, claimed_at=? "
                    "WHERE run_id=? AND (claimed_by IS NULL OR claimed_by=?)",
                    (res["status"], now, *[_sql(res[c]) for c in cols], now, res["run_id"], self.owner))
                if cur.rowcount != 1:
                    kept.append(False)
                    continue
                kept.append(True)
                rid = res["run_id"]
                if res.get("traj") is not None or res.get("telemetry") is not None:
                    self.db.execute("INSERT OR REPLACE INTO blobs VALUES (?,?,?)",
                                    (rid, res.get("traj"), res.get("telemetry")))
                else:
                    self.db.execute("DELETE FROM blobs WHERE run_id=?", (rid,))
                self.db.execute("DELETE FROM robustness WHERE run_id=?", (rid,))
                if res.get("robustness"):
                    self.db.executemany("INSERT INTO robustness VALUES (?,?,?,?)",
                                        [(rid, req, _sql(float(v)), _sql(t)) for req, v, t in res["robustness"]])
        return kept

    def robustness(self, run_id: int | None = None) -> list[tuple[int, str, float, float]]:
        """``(run_id, requirement, robustness, t_worst_s)`` rows (all runs, or one), NaN for NULL."""
        q = "SELECT run_id, requirement, robustness, t_worst_s FROM robustness"
        rows = self.db.execute(q + (" WHERE run_id=?" if run_id is not None else "") + " ORDER BY run_id, rowid",
                               () if run_id is None else (int(run_id),)).fetchall()
        return [(r, q_, _f(v), _f(t)) for r, q_, v, t in rows]

    def run(self, run_id: int) -> dict:
        cur = self.db.execute("SELECT * FROM runs WHERE run_id=?", (run_id,))
        row = cur.fetchone()
        if row is None:
            n = self.db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
            raise ConfigError(f"{self.path}: no run {run_id}; allowed: 0..{n - 1}")
        d = dict(zip([c[0] for c in cur.description], row))
        for k in ("point_json", "params_json", "sampled_json"):
            d[k[:-5]] = json.loads(d.pop(k))
        return d

    def blob(self, run_id: int, kind: str) -> bytes | None:
        try:
            row = self.db.execute(f"SELECT {kind} FROM blobs WHERE run_id=?", (run_id,)).fetchone()
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"{self.path}: the campaign database is damaged (SQLite: {exc} reading the {kind} of "
                              f"run {run_id}); the file was not changed") from None
        return row[0] if row else None

    def trajectory(self, run_id: int) -> dict | None:
        """The run's trajectory for plots (worker.TRAJ_COLUMNS at about worker.TRAJ_HZ): from its
        decimated blob, or from its kept telemetry; None when neither is stored."""
        from harness.campaign.worker import decimate

        traj = self.columns(run_id, "traj")
        if traj is not None:
            return traj
        tm = self.columns(run_id, "telemetry")
        return None if tm is None else decimate(tm)

    def columns(self, run_id: int, kind: str) -> dict | None:
        """The ``traj`` or ``telemetry`` blob of a run unpacked (worker.unpack_columns), None
        when not stored; a blob that does not unpack is refused naming the file and the run."""
        from harness.campaign.worker import unpack_columns

        blob = self.blob(int(run_id), kind)
        if blob is None:
            return None
        try:
            return unpack_columns(blob)
        except Exception as exc:  # noqa: BLE001 - lzma, json, zip (npz) errors: a damaged blob
            raise ConfigError(f"{self.path}: the {kind} of run {run_id} is damaged ({type(exc).__name__}: "
                              f"{exc}); the file was not changed") from None

    # tables --------------------------------------------------------------------------------
    def table(self) -> np.ndarray:
        """Every run as one row of a numpy structured array (see ``harness.campaign.results``)."""
        camp = self.campaign()
        if camp is None:
            raise ConfigError(f"{self.path}: no campaign in this database")
        axes, dispersed = camp["axes"], camp["dispersed"]
        fields = [("run_id", "i8"), ("point_index", "i8")]
        for a in axes:
            fields.append((param_field(a["name"]), "f8") if a["numeric"] else (param_field(a["name"]), "U40"))
        fields += [(param_field(p), "f8") for p in dispersed]
        fields += [("seed", "u8"), ("status", "U8")]
        fields += [(c, "f8") for c in METRIC_COLUMNS] + [(c, "i8") for c in INT_COLUMNS]
        fields += [("outcome", "U16"), ("failure_mode", "U48"), ("worker", "U48"), ("error", "U200")]
        # one query, column by column into numpy (100,000 runs in about a second): the dispersed
        # values are taken out of their JSON by SQLite, the axis labels once per grid point
        in_sql = all('"' not in p and "\\" not in p for p in dispersed)
        cur = self.db.execute(
            "SELECT run_id, point_index, "
            + ("".join("json_extract(sampled_json, ?), " for _ in dispersed) if in_sql else "sampled_json, ")
            + f"seed, status, {', '.join(METRIC_COLUMNS)}, {', '.join(INT_COLUMNS)}, outcome, failure_mode, worker, "
            "substr(error, 1, 200) FROM runs ORDER BY run_id", [f'$."{p}"' for p in dispersed] if in_sql else [])
        rows = cur.fetchall()
        out = np.zeros(len(rows), dtype=fields)
        if not rows:
            return out
        cols = list(zip(*rows))
        if not in_sql:  # a path SQLite's JSON path cannot quote: unpack in Python
            sampled = [json.loads(v) for v in cols[2]]
            cols = [*cols[:2], *([sd.get(p) for sd in sampled] for p in dispersed), *cols[3:]]
        out["run_id"], out["point_index"] = cols[0], cols[1]
        points = dict(self.db.execute("SELECT point_index, MIN(point_json) FROM runs GROUP BY point_index"))
        pidx = np.asarray(cols[1], dtype=np.int64)
        at = np.searchsorted(np.array(sorted(points), dtype=np.int64), pidx)
        labels = [json.loads(points[k]) for k in sorted(points)]
        for a in axes:
            f = param_field(a["name"])
            per_point = [lab.get(a["name"]) for lab in labels]
            if a["numeric"]:
                to_value = {str(lab): float(v) for lab, v in zip(a["labels"], a["values"])}
                out[f] = np.array([to_value[str(lab)] for lab in per_point], dtype=float)[at]
            else:
                out[f] = np.array(["" if lab is None else str(lab) for lab in per_point], dtype="U40")[at]
        i = 2
        for p in dispersed:
            out[param_field(p)] = _floats(cols[i])
            i += 1
        out["seed"], out["status"] = cols[i], cols[i + 1]
        i += 2
        for c in METRIC_COLUMNS:
            out[c] = _floats(cols[i])
            i += 1
        for c in INT_COLUMNS:
            out[c] = [v or 0 for v in cols[i]]
            i += 1
        for c in ("outcome", "failure_mode", "worker", "error"):
            out[c] = [v or "" for v in cols[i]]
            i += 1
        return out


RESERVED = ("run_id", "point_index", "seed", "status", *METRIC_COLUMNS, *INT_COLUMNS, "outcome", "failure_mode",
            "worker", "error")


def param_field(name: str) -> str:
    """The results-table field of a sweep axis or dispersed path: its name, or ``in.NAME`` when the
    name is also a result column (dispersing ``propellant_kg`` gives ``in.propellant_kg``)."""
    return f"in.{name}" if name in RESERVED else name


def _f(v) -> float:
    try:
        return float(v) if v is not None else math.nan
    except (TypeError, ValueError):
        return math.nan


def _plan_rows(planned):
    """``(run_id, point_index, point_json, params_json, sampled_json, seed)`` of each planned run,
    the text exactly ``json.dumps`` of each dict: what is the same for every run of a grid point
    (its point, its fixed and swept values) is encoded once per point, the dispersed floats of
    each run with ``float.__repr__`` (what json.dumps writes for a finite float)."""
    cache: dict[int, tuple] = {}
    key_json: dict[str, str] = {}
    for r in planned:
        c = cache.get(r.point_index)
        if c is None or c[0] is not r.point:
            fixed = {k: v for k, v in r.overrides.items() if k not in r.sampled}
            simple = list(r.overrides)[:len(fixed)] == list(fixed)  # sampled paths come after the fixed ones
            c = cache[r.point_index] = (r.point, json.dumps(r.point), json.dumps(fixed)[:-1], fixed, simple)
        sampled = None
        if c[4] and all(type(v) is float and math.isfinite(v) for v in r.sampled.values()):
            parts = []
            for k, v in r.sampled.items():
                kj = key_json.get(k)
                if kj is None:
                    kj = key_json[k] = json.dumps(k)
                parts.append(f"{kj}: {v!r}")
            sampled = "{" + ", ".join(parts) + "}"
        if sampled is None:  # anything unusual: the plain way
            yield r.run_id, r.point_index, c[1], json.dumps(r.overrides), json.dumps(r.sampled), r.seed
            continue
        params = sampled if not c[3] else (c[2] + (", " + sampled[1:] if r.sampled else "}"))
        yield r.run_id, r.point_index, c[1], params, sampled, r.seed


def _floats(col) -> np.ndarray:
    """A column of SQL values as float64, NULL and non-numbers as NaN."""
    try:
        return np.array(col, dtype=float)  # None -> NaN
    except (TypeError, ValueError):
        return np.array([_f(v) for v in col], dtype=float)


def _sql(v):
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, np.generic):
        return v.item()
    return v
