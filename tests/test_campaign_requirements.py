"""Requirements in campaigns (issue 16): the spec key, robustness per run and requirement in the
real SQLite file (equal to a re-flight's), databases from before the table existed, the report."""
from __future__ import annotations

import math
import sqlite3

import pytest

from harness.campaign import load_spec, plan, rerun, run_campaign
from harness.campaign.core import robustness_text
from harness.campaign.report import write_report
from harness.campaign.store import Store
from harness.errors import ConfigError
from harness.requirements import robustness_all

ALT_RULE = "always((alt_agl_m <= 50) implies (v_down_mps <= 3))"
SPEC = f"""
[campaign]
name = "req"
scenario = "nominal-terminal-descent"
seed = 5
runs_per_point = 1
run_timeout_s = 120
requirements = ["touchdown_envelope", "{ALT_RULE}"]
[[sweep]]
path = "lrf.latency_s"
values = [0.0, 0.3]
"""


@pytest.mark.parametrize("value, words", [
    ('["touchdown_envelop"]', ["requirements", "touchdown_envelop", "touchdown_envelope"]),
    ('["always(altitude < 5)"]', ["requirements", "altitude", "alt_agl_m"]),
    ('["touchdown_envelope", "touchdown_envelope"]', ["requirements", "once"]),
    ('[""]', ["requirements"]),
    ('"touchdown_envelope"', ["requirements", "array"]),
])
def test_requirements_key_is_validated_naming_file_and_key(tmp_path, value, words):
    p = tmp_path / "bad.toml"
    p.write_text(f"[campaign]\nscenario = 'nominal-terminal-descent'\nseed = 1\nrequirements = {value}\n")
    with pytest.raises(ConfigError) as ei:
        load_spec(p)
    msg = str(ei.value)
    assert str(p) in msg
    for w in words:
        assert w in msg, (w, msg)


def test_requirements_enter_the_plan_digest_only_when_named(tmp_path):
    base = "[campaign]\nscenario = 'nominal-terminal-descent'\nseed = 1\n"
    (tmp_path / "a.toml").write_text(base)
    (tmp_path / "b.toml").write_text(base + "requirements = ['touchdown_envelope']\n")
    a, b = load_spec(tmp_path / "a.toml"), load_spec(tmp_path / "b.toml")
    assert a.requirements == () and b.requirements == ("touchdown_envelope",)
    assert a.digest != b.digest  # resuming a database with other requirements would leave rows missing


def test_campaign_stores_robustness_per_run_and_requirement_equal_to_a_reflight(tmp_path, capsys):
    spec_p = tmp_path / "req.toml"
    spec_p.write_text(SPEC)
    db = tmp_path / "req.sqlite"
    out = run_campaign(spec_p, db, workers=1, progress=False)
    assert (out.table["status"] == "done").all()
    with Store(db, create=False) as st:
        rows = st.robustness()
    assert sorted((r, q) for r, q, _, _ in rows) == sorted((r, q) for r in (0, 1)
                                                          for q in ("touchdown_envelope", ALT_RULE))
    # physics: the envelope robustness is the smallest margin of the touchdown row stored for the run
    for r, q, v, t in rows:
        if q == "touchdown_envelope":
            row = out.table[out.table["run_id"] == r][0]
            margins = (2.0 - row["v_vertical"], 0.5 - row["v_horizontal"], 12.0 - row["tilt_deg"])  # the envelope
            assert v == pytest.approx(min(margins), abs=0.02), (r, margins)
            assert t == pytest.approx(row["touchdown_t_s"], abs=0.5)
    # a re-flight of run 1 gives the same robustness to the last bit (rerun compares them too)
    again = rerun(db, 1, tmp_path / "again")
    assert again.reproduced, again.differences
    fresh = {x.requirement: (x.value, x.t_worst_s) for x in robustness_all(again.result,
                                                                              ["touchdown_envelope", ALT_RULE])}
    stored = {q: (v, t) for r, q, v, t in rows if r == 1}
    assert stored == fresh
    # the summary: per requirement min, median, violations
    text = robustness_text(rows)
    assert "touchdown_envelope: min +" in text and "violated in 0 of 2 runs" in text
    assert f"{ALT_RULE}: min -" in text and "violated in 2 of 2 runs" in text
    # fsil campaign (resuming: nothing left to fly) prints the same lines in its summary
    from harness.cli import main

    assert main(["campaign", str(spec_p), "--db", str(db), "--no-progress"]) == 0
    assert text in capsys.readouterr().out
    # a stored robustness that differs from the re-flight is reported as not reproduced
    with sqlite3.connect(db) as con:
        con.execute("UPDATE robustness SET robustness = robustness + 0.5 WHERE run_id = 1 AND "
                    "requirement = 'touchdown_envelope'")
    con.close()
    assert any("robustness of touchdown_envelope" in d for d in rerun(db, 1, tmp_path / "again2").differences)
    # the report plots robustness per requirement and lists the worst runs
    html = write_report(db, tmp_path / "r.html").read_text()
    sec = html.split("<h2>Requirements: robustness per run</h2>", 1)
    assert len(sec) == 2
    assert "data:image/png;base64," in sec[1].split("<h2>", 1)[0]
    assert "touchdown_envelope" in sec[1] and "run 1:" in sec[1]


def test_database_from_before_requirements_gets_the_table_and_keeps_its_runs(tmp_path):
    spec_p = tmp_path / "req.toml"
    spec_p.write_text(SPEC)
    spec = load_spec(spec_p)
    db = tmp_path / "old.sqlite"
    with Store(db) as st:
        st.init_campaign(spec, plan(spec))
    with sqlite3.connect(db) as con:  # as the previous version wrote it: no robustness table, no fsil mark
        con.execute("DROP TABLE robustness")
        con.execute("PRAGMA application_id=0")
        con.execute("UPDATE runs SET status='done', outcome='landed' WHERE run_id=0")
    con.close()
    with Store(db) as st:
        assert st.robustness() == []
        assert st.claim(5) and st.record({"run_id": 1, "status": "done", "outcome": "crashed",
                                          "robustness": [("touchdown_envelope", -2.5, 80.0),
                                                         (ALT_RULE, math.nan, None)]})
        rows = st.robustness()
        assert st.run(0)["status"] == "done"
    assert rows[0] == (1, "touchdown_envelope", -2.5, 80.0)
    assert rows[1][:2] == (1, ALT_RULE) and math.isnan(rows[1][2]) and math.isnan(rows[1][3])
    with sqlite3.connect(db) as con:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    con.close()
    assert "robustness" in tables
