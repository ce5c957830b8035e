"""Campaign databases at scale (issue 15): the whole plan's seeds at once equal numpy's
SeedSequence, and a synthetic 20,000-run database (real schema, benchmarks/bench_campaign_db.py)
resumes and reports correctly. Not timed: the seconds are in benchmarks/bench_campaign_db.py."""
from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.campaign import results, thresholds, write_report
from harness.campaign.core import load_db, summary_text
from harness.campaign.sampling import plan, run_seed, run_seeds
from harness.campaign.store import Store

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))


@pytest.mark.parametrize("seed", [0, 1, 20250606, 2**32 - 1, 2**32, 2**63 + 12345, 2**127 + 3])
def test_run_seeds_equal_seedsequence_of_every_run(seed):
    got = run_seeds(seed, 2000)
    assert got.dtype == np.uint32 and len(set(got.tolist())) == 2000
    assert got.tolist() == [run_seed(seed, i) for i in range(2000)]


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    from bench_campaign_db import synthetic_db

    db = tmp_path_factory.mktemp("scale") / "s.sqlite"
    synthetic_db(db, 20_000, failed=0.3, pending=0.05, seed=4)
    return db


def test_synthetic_database_has_the_real_schema_and_the_real_plan(synthetic):
    from bench_campaign_db import synthetic_spec

    spec = synthetic_spec(20_000)
    planned = plan(spec)
    tab = results(synthetic)
    assert len(tab) == spec.n_runs == 45 * 444 == len(planned)
    assert tab["seed"].tolist() == [r.seed for r in planned]
    assert np.array_equal(tab["v_up_mps"], [r.sampled["v_up_mps"] for r in planned])
    assert tab["lrf_acquire_m"].tolist() == [float(r.point["lrf_acquire_m"]) for r in planned]
    assert tab["flight_code"].tolist() == [r.point["flight_code"] for r in planned]
    pending = tab["status"] == "pending"
    assert pending.sum() == round(0.05 * len(tab)) and pending[-pending.sum():].all()
    done = tab[~pending]
    share = (done["outcome"] == "crashed").mean()
    assert 0.27 < share < 0.33
    # resume: the same spec opens it, and exactly the pending runs are left to fly
    with Store(synthetic) as st:
        assert st.init_campaign(spec, planned) is True
        assert [t["run_id"] for t in st.pending()] == tab["run_id"][pending].tolist()
        with pytest.raises(Exception, match="different spec"):
            st.init_campaign(synthetic_spec(20_000, requirements=()), planned)


def test_synthetic_database_reports_every_section_with_the_right_numbers(synthetic, tmp_path):
    spec, tab, axes = load_db(synthetic)
    text = summary_text(tab, axes)
    done = tab[tab["status"] == "done"]
    landed = int((done["outcome"] == "landed").sum())
    assert f"total: {len(done)}/{len(tab)} runs finished, {landed} landed, crashed {len(done) - landed}" in text
    # per grid point: 444 runs, the last points partly pending
    assert text.count("444/444") + text.count("/444") >= 45
    th = thresholds(tab, axes)
    assert {t["group"]["flight_code"] for t in th} == {"as-flown", "gate-fix", "gate-fix+contingency"}
    assert sum(int(t["n"].sum()) for t in th) == len(done)
    out = write_report(synthetic, tmp_path / "r.html")
    html = out.read_text()
    for section in ("Where the flight code stops landing", "Touchdown speeds", "Failure modes", "Worst runs",
                    "Requirements: robustness per run", "touchdown_envelope"):
        assert section in html, section
    assert html.count("data:image/png;base64,") >= 6
    with sqlite3.connect(synthetic) as con:
        rob = con.execute("SELECT COUNT(*), SUM(robustness < 0) FROM robustness").fetchone()
    assert rob[0] == len(done)
    assert f"{rob[1]} of {len(done)}" in html  # violated in how many runs, counted over every row


@pytest.mark.parametrize("extra", ["", '[scenario]\n"v_up_mps" = -60.0\n', "no-dispersions"])
def test_plan_rows_are_exactly_json_dumps_of_each_run(extra):
    """The plan written once per grid point and per run (store._plan_rows) is the text json.dumps
    gives, also when a dispersed path is also a fixed override, or nothing is dispersed."""
    import json

    from bench_campaign_db import synthetic_spec
    from harness.campaign import load_spec
    from harness.campaign.store import _plan_rows

    text = synthetic_spec(450, requirements=()).text.replace("runs_per_point = 10", "runs_per_point = 3")
    if extra == "no-dispersions":
        text = text[:text.index("[dispersions]")] + text[text.index("[[sweep]]"):]
    else:
        text = text.replace("[dispersions]", extra + "[dispersions]")
    spec = load_spec("p.toml", text=text)
    planned = plan(spec)
    assert len(planned) == 135
    assert list(_plan_rows(planned)) == [(r.run_id, r.point_index, json.dumps(r.point), json.dumps(r.overrides),
                                          json.dumps(r.sampled), r.seed) for r in planned]
