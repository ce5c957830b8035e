"""What a campaign worker keeps between runs, and the post-processing after each run's cycle loop.

Per-process caches of parsed or hashed files (lander file, parameter table, the loopback build
key) must serve a changed file afresh, even one rewritten with the same size and its old
modification time; the run's post-processing (the per-cycle record's conversion, the TELEMETRY
merge, the digest) must give exactly what the plain numpy definitions give, for every input.
"""
from __future__ import annotations

import hashlib
import itertools
import math
import os
import shutil
import time
from pathlib import Path

import numpy as np

import pytest

from harness import filestamp, protocol as p, record_columns, runner
from harness.campaign.worker import metrics, telemetry_digest
from harness.lander import load_lander
from harness.params import load_param_table
from harness.targets import loopback as target

ROOT = Path(__file__).resolve().parent.parent


def _age(*paths: Path, seconds: float = 60.0) -> None:
    """Set the files' access and modification times ``seconds`` into the past (their ctime stays now)."""
    t = time.time() - seconds
    for path in paths:
        os.utime(path, (t, t))


def _rewrite_same_size(path: Path, old: str, new: str) -> None:
    """Replace ``old`` by ``new`` (same length) and put the file's modification time back: only
    its contents and its ctime tell the change."""
    assert len(old) == len(new)
    st = path.stat()
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size and path.stat().st_mtime_ns == st.st_mtime_ns


def _settle(monkeypatch) -> None:
    """Make every stamp count as settled (as files not touched for a while are)."""
    monkeypatch.setattr(filestamp, "SETTLE_NS", -10**12)


def test_lander_file_rewritten_with_same_size_and_mtime_is_read_again(tmp_path, monkeypatch):
    _settle(monkeypatch)
    f = tmp_path / "probe.toml"
    shutil.copyfile(ROOT / "harness/data/landers/reference.toml", f)
    _age(f)
    first = load_lander(str(f))
    assert load_lander(str(f)) is first  # unchanged: the parsed spec is kept
    _rewrite_same_size(f, "thrust_max_n = 4000.0", "thrust_max_n = 4100.0")
    assert first.thrust_max_n == 4000.0 and load_lander(str(f)).thrust_max_n == 4100.0


def test_recently_changed_lander_file_is_not_kept(tmp_path):
    f = tmp_path / "fresh.toml"
    shutil.copyfile(ROOT / "harness/data/landers/reference.toml", f)  # written now: not settled
    assert load_lander(str(f)) is not load_lander(str(f))


def test_param_table_follows_its_file(tmp_path, monkeypatch):
    _settle(monkeypatch)
    d = tmp_path / "fw"
    d.mkdir()
    shutil.copyfile(ROOT / "firmware_stub/fsw_params.def", d / "fsw_params.def")
    _age(d / "fsw_params.def")
    first = load_param_table(d)
    assert load_param_table(str(d)) is first
    _rewrite_same_size(d / "fsw_params.def", "1737400.0, -1.0e8", "1737500.0, -1.0e8")
    assert first["NAV_R0_X"].default == 1737400.0 and load_param_table(d)["NAV_R0_X"].default == 1737500.0


def test_loopback_build_key_kept_while_the_sources_are_unchanged_and_renewed_when_not(tmp_path, monkeypatch):
    _settle(monkeypatch)
    src = tmp_path / "fw"
    shutil.copytree(ROOT / "firmware_stub", src, ignore=shutil.ignore_patterns("targets", "*.o", "*.md"))
    hashed = []
    real = target.content_key
    monkeypatch.setattr(target, "content_key", lambda files, parts: hashed.append(1) or real(files, parts))
    cflags = ["-O2"]
    k1 = target._build_key(src, cflags)
    assert target._build_key(src, cflags) == k1 and len(hashed) == 1  # unchanged tree: not hashed again
    _rewrite_same_size(src / "fsw_app.h", '"fsil-ref"', '"fsil-REF"')
    k2 = target._build_key(src, cflags)
    assert len(hashed) == 2 and k2 != k1
    (src / "extra.h").write_text("/* a new header counts too */\n")
    k3 = target._build_key(src, cflags)
    assert len(hashed) == 3 and k3 not in (k1, k2)
    target._KEYS.clear()
    assert target._build_key(src, cflags) == k3  # what a fresh process computes


def _fromiter_columns(rows):
    """The per-cycle record converted the plain way (numpy's float conversion of every value)."""
    sent = np.fromiter(itertools.chain.from_iterable(rows), float, len(rows) * len(runner._SENT))
    sent = sent.reshape(-1, len(runner._SENT))
    return {name: sent[:, i] for i, name in enumerate(runner._SENT)}


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def test_record_conversion_keeps_every_bit_and_takes_values_of_any_type():
    payload_nan = float(np.frombuffer(np.uint64(0x7FF8_0000_DEAD_BEEF).tobytes(), np.float64)[0])
    usual = [(2877.83, 0.4448, 1, 2, math.nan, False, True), (-0.0, 0.0, 0, 255, 3.25, True, False),
             (1e-310, 1.0, 1, 7, payload_nan, True, True), (5e300, -0.0, 0, 0, -0.0, False, False)]
    # ints a double cannot hold exactly (rounded to nearest, ties to even), beyond int64 too
    big = [(2**53 + 1, -(2**63) - 2**11, 2**64 + 2**12, -(2**53) - 3, 2**1023 + 2**970, True, 0)]
    assert record_columns.columns_of(usual + big, len(runner._SENT)) is not None, record_columns.why_not()
    for rows in (usual, [], usual + big, usual + [(1, 0.5, 1.0, 2, None, 1, 0)],
                 usual + [(1.5, 0.5, True, 2.0, 3, 2, -1)], usual + [(np.float64(2.5), 0.5, 1, 2, 3.0, True, False)],
                 usual + [(1.0, 0.5, 1, 2, 3.0, True)] + usual):
        try:
            want = _fromiter_columns(rows)
        except ValueError:  # a row of another width: numpy refuses the record, and so must the runner
            with pytest.raises(ValueError):
                runner._sent_columns(rows)
            continue
        got = runner._sent_columns(rows)
        assert list(got) == list(runner._SENT)
        for name in runner._SENT:
            assert got[name].flags.c_contiguous and _same_bits(got[name], np.ascontiguousarray(want[name])), name
    with pytest.raises(OverflowError):  # an int beyond the double range: as float() says
        runner._sent_columns(usual + [(10**400, 0.5, 1, 2, 3.0, True, False)])


def test_record_columns_helper_is_rebuilt_for_a_changed_source_and_a_broken_one_leaves_python_to_it(
        tmp_path, monkeypatch):
    monkeypatch.setenv("FSIL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(record_columns, "_function", None)
    monkeypatch.setattr(record_columns, "_why_not", None)
    source = tmp_path / "record_columns.c"
    source.write_text(record_columns.SOURCE.read_text())
    monkeypatch.setattr(record_columns, "SOURCE", source)
    rows = [(1.5, 2.0, 1, 3, math.nan, True, False)] * 5
    assert record_columns.columns_of(rows, 7)[:, 0].tolist()[:4] == [1.5, 2.0, 1.0, 3.0]
    built = sorted(p.name for p in (tmp_path / "cache/record").iterdir())
    # the same source, changed: a build of its own (this one writes 2.0 for True), used by a new process
    source.write_text(source.read_text().replace("d = 1.0;", "d = 2.0;"))
    monkeypatch.setattr(record_columns, "_function", None)
    assert record_columns.columns_of(rows, 7)[5].tolist() == [2.0] * 5
    assert len(list((tmp_path / "cache/record").iterdir())) == len(built) + 1
    source.write_text("this is not C\n")
    monkeypatch.setattr(record_columns, "_function", None)
    assert record_columns.columns_of(rows, 7) is None and "record_columns.c" in record_columns.why_not()
    got, want = runner._sent_columns(rows), _fromiter_columns(rows)
    assert all(_same_bits(got[k], np.ascontiguousarray(want[k])) for k in runner._SENT)


def _telemetry_records(t_us: list[int], est_alt: list[float]) -> np.ndarray:
    """TELEMETRY records (numpy, as ``FlightLink.telemetry_records()`` gives them) with these time stamps."""
    recs = np.zeros(len(t_us), p.unpack_telemetry([]).dtype)
    recs["t_us"], recs["est_alt"] = t_us, est_alt
    recs["lrf_status"] = np.arange(len(t_us)) % 5
    recs["lrf_innovation"] = np.arange(len(t_us)) * 0.5
    return p.unpack_telemetry([recs.tobytes()[:40 * p.TELEMETRY_PACKET_SIZE], recs.tobytes()[40 * p.TELEMETRY_PACKET_SIZE:]])


def _merged(t_us: list[int], est_alt: list[float], n_rows: int, dt_us: int = 20_000) -> dict:
    tm = {"t_s": np.arange(n_rows) * dt_us / 1e6}
    runner._merge_telemetry(tm, _telemetry_records(t_us, est_alt), dt_us)
    return tm


def test_telemetry_lands_on_the_row_of_its_time_stamp_whatever_its_arrival_order():
    n = 100
    in_order = _merged([20_000 * k for k in range(n)], [float(k) for k in range(n)], n)
    np.testing.assert_array_equal(in_order["est_alt_m"], np.arange(n, dtype=float))
    rng = np.random.default_rng(3)
    perm = rng.permutation(n)
    shuffled = _merged([20_000 * int(k) for k in perm], [float(k) for k in perm], n)
    for col in ("est_alt_m", "lrf_innovation_m", "lrf_status"):
        assert shuffled[col].shape == (n,)
    np.testing.assert_array_equal(shuffled["est_alt_m"], in_order["est_alt_m"])
    # decimated (every 4th cycle) and one repeated late: held between frames, the later arrival wins
    t = [80_000 * k for k in range(25)] + [80_000 * 3]
    held = _merged(t, [float(k) for k in range(25)] + [99.0], n)
    want = np.repeat(np.arange(25, dtype=float), 4)
    want[12:16] = 99.0
    np.testing.assert_array_equal(held["est_alt_m"], want)
    late = _merged([40_000, 60_000], [1.0, 2.0], 4)  # no TELEMETRY yet for the first two rows
    np.testing.assert_array_equal(late["est_alt_m"], [np.nan, np.nan, 1.0, 2.0])
    np.testing.assert_array_equal(late["lrf_status"], [0.0, 0.0, 0.0, 1.0])


def test_digest_is_sha256_of_names_dtypes_shapes_and_bytes():
    tm = {"t_s": np.arange(5.0), "every_other": np.arange(10.0)[::2], "none": np.zeros(0),
          "flags": np.array([True, False, True]), "big_endian": np.arange(4, dtype=">i4"),
          "matrix_T": np.arange(6.0).reshape(2, 3).T}
    h = hashlib.sha256()
    for name, a in tm.items():
        a = np.ascontiguousarray(a)
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    assert telemetry_digest(tm) == h.hexdigest()


def test_campaign_flight_keeps_no_round_trips_and_flies_the_same(tmp_path):
    from harness.campaign.worker import fly_on_rig, warm_up
    from harness.rigs import open_rig
    from harness.scenario_files import load_scenario

    warm_up()
    sc = load_scenario("nominal-terminal-descent")
    with open_rig("loopback") as up:
        measured = up.fly(sc)
    campaign = fly_on_rig(sc)
    assert measured.link_stats["round_trip_median_s"] > 0
    assert math.isnan(campaign.link_stats["round_trip_median_s"]) and math.isnan(campaign.link_stats["round_trip_p99_s"])
    assert list(campaign.telemetry) == list(measured.telemetry)
    assert all(_same_bits(campaign.telemetry[k], measured.telemetry[k]) for k in measured.telemetry)
    assert campaign.touchdown == measured.touchdown and campaign.verdict() == measured.verdict()
    m = metrics(campaign)  # the findings computed once serve the numbers, the failure mode and the verdict
    assert m["verdict"] == measured.verdict() and m["first_lrf_t_s"] == measured.first_valid_lrf()["t_s"]


def test_generated_terrain_built_once_per_arguments_each_flight_its_own_object():
    from harness import terrain
    from harness.frames import SiteFrame

    terrain._GENERATED.clear()
    kw = dict(rim_radius_m=2000.0, step_m=3000.0, wall_width_m=300.0, rim_lip_m=0.0, margin_m=1500.0)
    a = terrain.crater_rim_step(SiteFrame(), **kw)
    b = terrain.crater_rim_step(SiteFrame(), **kw)
    fresh = terrain.crater_rim_step.__wrapped__(SiteFrame(), **kw)  # the generator itself, nothing kept
    assert a is not b and a.heights is b.heights and not a.heights.flags.writeable
    assert _same_bits(a.heights, fresh.heights) and a.max_slope == fresh.max_slope
    site = SiteFrame()
    origin = site.to_mci(-1000.0, 0.0, 2500.0)  # above the crater floor, looking down at the wall
    down = [-0.5 * e - u for e, u in zip(site.east_mci, site.up_mci)]
    assert a.ray_cast(origin, down, 1e4) == fresh.ray_cast(origin, down, 1e4)
    a.last_iterations = 7  # what a flight's ray casts leave on its terrain stays on its own
    assert getattr(b, "last_iterations", 0) != 7 and getattr(fresh, "last_iterations", 0) != 7
    other = terrain.crater_rim_step(SiteFrame(), **{**kw, "step_m": 2000.0})
    assert other.heights is not a.heights and other.base_height_m == 2000.0
    elsewhere = terrain.crater_rim_step(SiteFrame(lat_rad=0.1), **kw)
    assert elsewhere.site.lat_rad == 0.1 and elsewhere.heights is not a.heights
    assert len(terrain._GENERATED) == 3


def _reference_columns(truth: np.ndarray, rows: list[tuple], site_radius: float) -> dict[str, np.ndarray]:
    """The per-cycle record's columns by their plain numpy definitions (norm, einsum dot products,
    the body +z axis stacked), as the runner computed them before it worked on one transposed copy."""
    from harness.frames import MOON_GM

    sent = _fromiter_columns(rows)
    r, v = truth[:, runner._R:runner._R + 3], truth[:, runner._V:runner._V + 3]
    w, x, y, z = (truth[:, runner._Q + k] for k in range(4))
    rn = np.sqrt(r[:, 0] * r[:, 0] + r[:, 1] * r[:, 1] + r[:, 2] * r[:, 2])
    up = r / rn[:, None]
    v_up = np.einsum("ij,ij->i", v, up)
    zb = np.stack([2 * (x * z + w * y), 2 * (y * z - w * x), 1 - 2 * (x * x + y * y)], axis=1)
    n = len(truth)
    ref = {"t_s": truth[:, runner._T], "mass_kg": truth[:, runner._MASS], "thrust_n": truth[:, runner._THRUST],
           "v_up_mps": v_up, "v_horizontal_mps": np.sqrt(np.maximum(0.0, np.einsum("ij,ij->i", v, v) - v_up * v_up)),
           "tilt_deg": np.degrees(np.arccos(np.clip(np.einsum("ij,ij->i", zb, up), -1.0, 1.0))),
           "truth_alt_site_m": rn - site_radius, "gravity_mps2": MOON_GM / (rn * rn),
           "est_alt_m": np.full(n, np.nan), "lrf_status": np.zeros(n), "lrf_innovation_m": np.full(n, np.nan), **sent}
    return {c: np.ascontiguousarray(ref[c]) for c in runner.COLUMNS}


def test_derived_columns_keep_the_bits_of_their_numpy_definitions():
    """Vertical and horizontal speed, tilt, height and gravity from the truth record: the same bits
    as norm, einsum and stack give (signed zeros, NaN, infinities and subnormals included)."""
    rng = np.random.default_rng(11)
    n = 20_000
    truth = np.empty((n, len(runner.STATE_FIELDS)))
    truth[:] = rng.standard_normal(truth.shape)
    truth[:, runner._R:runner._R + 3] *= 1.7374e6
    truth[:, runner._V:runner._V + 3] *= 10.0 ** rng.integers(-6, 3, (n, 1))
    q = truth[:, runner._Q:runner._Q + 4]
    q /= np.linalg.norm(q, axis=1)[:, None]
    truth[:50, runner._V:runner._V + 3] = rng.choice([0.0, -0.0], (50, 3))  # at rest: -0.0 products
    nan_free = truth.copy()  # with values whose products and sums overflow, infinities and subnormals
    pick = rng.random(truth.shape) < 0.02
    nan_free[pick] = rng.choice([0.0, -0.0, 5e-324, -1e-310, 1e300, -1e300, 1e160, np.inf, -np.inf], pick.sum())
    pick = rng.random(truth.shape) < 0.01
    truth[pick] = rng.choice([np.inf, -np.inf, np.nan, -np.nan, 0.0, -0.0, 1e300], pick.sum())
    rows = [(float(a), 0.5, 1, 2, float(b), True, False) for a, b in rng.standard_normal((n, 2))]
    with np.errstate(all="ignore"):
        for data in (nan_free, truth):
            for k in (n, 7, 1, 0):
                got = runner._columns(data[:k], rows[:k], 1737.4e3 + 12.5)
                want = _reference_columns(data[:k], rows[:k], 1737.4e3 + 12.5)
                assert list(got) == list(runner.COLUMNS)
                for c in runner.COLUMNS:
                    assert got[c].flags.c_contiguous and _same_bits(got[c], want[c]), (k, c)


def test_round_trip_median_and_p99_are_numpys():
    rng = np.random.default_rng(4)
    for n in [1, 2, 3, 4, 99, 100, 101, 199, 200, 201, 6361, 6362]:
        for _ in range(10):
            t = rng.random(n) * 1e-5
            if rng.random() < 0.5:
                t = np.round(t, 8)  # repeated values
            assert runner._median_p99(t.tolist()) == (np.median(t), np.percentile(t, 99)), n
    m, p99 = runner._median_p99([])
    assert math.isnan(m) and math.isnan(p99)
    times = [1e-5, 3e-6, -0.0, 2e-5, 5e-324]
    assert record_columns.floats_of(times).tolist() == times, record_columns.why_not()
    for other in (times + [1], times + [np.float64(2e-6)], times + [True]):  # not floats alone: numpy's conversion
        assert record_columns.floats_of(other) is None
        assert runner._median_p99(other) == (np.median(other), np.percentile(other, 99))
