"""Campaign results in SQLite (stdlib sqlite3, WAL): one campaign per database file.

Tables::

    campaign   the spec (text, source, digest of what decides the runs), scenario, creation time
    runs       one row per planned run: grid point, parameters (JSON), seed, status
               (pending | done | error), outcome, metrics, failure mode, verdict, error text,
               the fully resolved scenario (JSON), worker, wall time, finish time
    blobs      per run: decimated trajectory (npz, every run), full telemetry (npz, failed runs)

The whole plan is written in one transaction before the first run flies; each result is then
committed on its own. Only the campaign process writes, so a kill -9 at any instant loses at most
the runs that were in the air: on the next start they are still ``pending`` and fly again.
"""
from __future__ import annotations

import json
import math
import sqlite3
import time
from pathlib import Path

import numpy as np

from harness.errors import ConfigError

METRIC_COLUMNS = ("v_vertical", "v_horizontal", "tilt_deg", "propellant_kg", "position_error_m", "touchdown_t_s",
                  "first_lrf_alt_m", "first_lrf_t_s", "pnr_t_s", "pnr_alt_m", "max_est_error_m", "sim_time_s",
                  "wall_s")
INT_COLUMNS = ("lrf_rejected",)
TEXT_COLUMNS = ("outcome", "failure_mode", "verdict", "error", "scenario_json", "worker")

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
    finished REAL
);
CREATE INDEX IF NOT EXISTS runs_status ON runs(status);
CREATE TABLE IF NOT EXISTS blobs (
    run_id INTEGER PRIMARY KEY REFERENCES runs(run_id), traj BLOB, telemetry BLOB
);
"""


class Store:
    def __init__(self, path: str | Path, create: bool = True):
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise ConfigError(f"campaign database {str(self.path)!r} not found")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, timeout=30.0)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across process kills
        self.db.executescript(_SCHEMA)
        self.db.commit()

    def close(self) -> None:
        self.db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # campaign ------------------------------------------------------------------------------
    def campaign(self) -> dict | None:
        row = self.db.execute("SELECT name, source, spec_text, digest, scenario, n_runs, created, axes_json, "
                              "dispersed_json FROM campaign").fetchone()
        if row is None:
            return None
        keys = ("name", "source", "spec_text", "digest", "scenario", "n_runs", "created", "axes", "dispersed")
        d = dict(zip(keys, row))
        d["axes"] = json.loads(d["axes"])
        d["dispersed"] = json.loads(d["dispersed"])
        return d

    def init_campaign(self, spec, planned) -> bool:
        """Write the spec and the plan (first start) or check they match (resume). True when resuming."""
        have = self.campaign()
        if have is not None:
            if have["digest"] != spec.digest:
                raise ConfigError(f"{self.path}: holds campaign {have['name']!r} planned from a different spec "
                                  f"(digest {have['digest']} vs {spec.digest} for {spec.source}); choose another "
                                  f"--db or delete the file to start over")
            return True
        axes = [{"name": a.name, "path": a.path, "labels": list(a.labels), "numeric": a.numeric,
                 "values": list(a.values) if a.numeric else None} for a in spec.axes]
        with self.db:
            self.db.execute("INSERT INTO campaign VALUES (1,?,?,?,?,?,?,?,?,?)",
                            (spec.name, spec.source, spec.text, spec.digest, spec.scenario, len(planned),
                             time.time(), json.dumps(axes), json.dumps([d.path for d in spec.dispersions])))
            self.db.executemany(
                "INSERT INTO runs (run_id, point_index, point_json, params_json, sampled_json, seed) "
                "VALUES (?,?,?,?,?,?)",
                ((r.run_id, r.point_index, json.dumps(r.point), json.dumps(r.overrides), json.dumps(r.sampled),
                  r.seed) for r in planned))
        return False

    # runs ----------------------------------------------------------------------------------
    def pending(self, retry_errors: bool = False) -> list[dict]:
        states = ("pending", "error") if retry_errors else ("pending",)
        q = f"SELECT run_id, params_json, seed FROM runs WHERE status IN ({','.join('?' * len(states))}) " \
            "ORDER BY run_id"
        return [{"run_id": r, "overrides": json.loads(p), "seed": s} for r, p, s in self.db.execute(q, states)]

    def counts(self) -> dict[str, int]:
        return dict(self.db.execute("SELECT status, COUNT(*) FROM runs GROUP BY status").fetchall())

    def record(self, res: dict) -> None:
        cols = [c for c in (*METRIC_COLUMNS, *INT_COLUMNS, *TEXT_COLUMNS) if c in res]
        vals = [_sql(res[c]) for c in cols]
        with self.db:
            self.db.execute(f"UPDATE runs SET status=?, finished=?, {', '.join(f'{c}=?' for c in cols)} "
                            "WHERE run_id=?", (res["status"], time.time(), *vals, res["run_id"]))
            if res.get("traj") is not None or res.get("telemetry") is not None:
                self.db.execute("INSERT OR REPLACE INTO blobs VALUES (?,?,?)",
                                (res["run_id"], res.get("traj"), res.get("telemetry")))
            else:
                self.db.execute("DELETE FROM blobs WHERE run_id=?", (res["run_id"],))

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
        row = self.db.execute(f"SELECT {kind} FROM blobs WHERE run_id=?", (run_id,)).fetchone()
        return row[0] if row else None

    # tables --------------------------------------------------------------------------------
    def table(self) -> np.ndarray:
        """Every run as one row of a numpy structured array (see ``harness.campaign.results``)."""
        camp = self.campaign()
        if camp is None:
            raise ConfigError(f"{self.path}: no campaign in this database")
        axes, dispersed = camp["axes"], camp["dispersed"]
        cur = self.db.execute(
            "SELECT run_id, point_index, point_json, sampled_json, seed, status, "
            f"{', '.join(METRIC_COLUMNS)}, {', '.join(INT_COLUMNS)}, outcome, failure_mode, worker, "
            "substr(error, 1, 200) FROM runs ORDER BY run_id")
        rows = cur.fetchall()
        fields = [("run_id", "i8"), ("point_index", "i8")]
        for a in axes:
            fields.append((param_field(a["name"]), "f8") if a["numeric"] else (param_field(a["name"]), "U40"))
        fields += [(param_field(p), "f8") for p in dispersed]
        fields += [("seed", "u8"), ("status", "U8")]
        fields += [(c, "f8") for c in METRIC_COLUMNS] + [(c, "i8") for c in INT_COLUMNS]
        fields += [("outcome", "U16"), ("failure_mode", "U48"), ("worker", "U48"), ("error", "U200")]
        out = np.zeros(len(rows), dtype=fields)
        label_to_value = {a["name"]: dict(zip(a["labels"], a["values"])) if a["numeric"] else None for a in axes}
        nm, ni = len(METRIC_COLUMNS), len(INT_COLUMNS)
        for i, r in enumerate(rows):
            run_id, pidx, pj, sj, seed, status = r[:6]
            point, sampled = json.loads(pj), json.loads(sj)
            rec = [run_id, pidx]
            for a in axes:
                lab = point[a["name"]]
                rec.append(float(label_to_value[a["name"]][lab]) if a["numeric"] else lab)
            rec += [_f(sampled.get(p)) for p in dispersed]
            rec += [seed, status]
            rec += [_f(v) for v in r[6:6 + nm]] + [v or 0 for v in r[6 + nm:6 + nm + ni]]
            rec += [v or "" for v in r[6 + nm + ni:]]
            out[i] = tuple(rec)
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


def _sql(v):
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, np.generic):
        return v.item()
    return v
