"""The LRF's compiled flat-terrain sample (``flat_sample_kernel``, what the closed loop takes its
samples with) against its Python sample (``_sample``, every other terrain): the same readings bit
for bit, and the Python sample wherever the kernel does not hold."""

import numpy as np
import pytest

import sensor_models.lrf as lrf_module
from harness.frames import SiteFrame
from harness.jit import usable_numba
from harness.lander import load_lander
from harness.plant import STATE_FIELDS, ActuatorCommand, Plant, initial_state
from harness.terrain import FlatTerrain, RotatingTerrain, crater, flat
from sensor_models.lrf import LaserRangefinder, LrfConfig, flat_sample_kernel

SITE = SiteFrame()
OFF = ActuatorCommand(0.0, False, (0.0, 0.0, 0.0))
# every part of a sample: latency, dropouts, outliers, the three acquisition conditions, range
# limits, degradation with speed, a mounting offset and a boresight off the body axis
EVERYTHING = dict(latency_s=0.25, noise_sigma_m=0.5, noise_frac=0.002, dropout_prob=0.15, outlier_prob=0.15,
                  outlier_sigma_m=40.0, acquire_range_m=3500.0, acquire_altitude_m=2800.0, acquire_time_s=6.0,
                  min_range_m=80.0, max_range_m=4000.0, degrade_speed_mps=45.0, degrade_per_mps=0.004,
                  degrade_floor=0.4, position_body_m=(0.3, -0.2, -0.6), boresight_body=(0.05, 0.02, -1.0))


def tumbling_descent(terrain, moon_rotation=False):
    """An unpowered lander falling from 3 km at 40 m/s down, 45 m/s east, tilted 0.4 rad and
    rolling at 0.06 rad/s: its LRF sweeps from the ground (in acquisition range after ~5 s),
    through grazing ranges beyond the maximum, to the sky (no hit, after ~33 s), and its speed
    rises from 60 to 114 m/s, past the degradation speed."""
    return descent(terrain, 45.0, 0.4, moon_rotation)


def descent(terrain, v_east, tilt_rad, moon_rotation=False):
    L = load_lander()
    st = initial_state(SITE, L, 3000.0, v_east=v_east, v_up=-40.0, tilt_rad=tilt_rad, w_body=(0.06, 0.0, 0.0))
    return Plant(L, terrain, st, moon_rotation=moon_rotation)


#: the tumbling descent; and one at 90 m/s east that starts pointing at the sky (un-acquired, no
#: hit) and turns to the ground after ~10 s, so fast that the degradation floor holds
FLIGHTS = {"tumbling": (45.0, 0.4), "from the sky": (90.0, 2.2)}


def bits(reading):
    return (reading.range_m.hex(), reading.valid, reading.sample_t_s.hex(), reading.new)


def fly_both(plant, cfg, cycle_s, seconds=40.0):
    """Two LRFs on one generator seed over the plant's flight: one fed the state vector
    (``update_from_vector``), one the PlantState (``update``, the Python sample). Asserts their
    readings the same, bit for bit, at every cycle; returns them (vector's LRF, its readings)."""
    by_vector = LaserRangefinder(cfg, np.random.default_rng(11))
    by_state = LaserRangefinder(cfg, np.random.default_rng(11))
    x = plant.kernel_arrays()[0]
    readings = []
    while plant.state.t_s < seconds and plant.touchdown_state is None:
        s = plant.state
        got = by_vector.update_from_vector(s.t_s, x, plant.terrain)
        want = by_state.update(s.t_s, s, plant.terrain)
        assert bits(got) == bits(want), s.t_s
        assert (by_vector.acquired, by_vector.samples_taken) == (by_state.acquired, by_state.samples_taken)
        readings.append(got)
        plant.step(OFF, cycle_s)
    return by_vector, readings


@pytest.fixture(params=["compiled", "interpreted"])
def kernel(request, monkeypatch):
    """The kernel compiled by numba, or run as the Python it is written as (forced in use)."""
    if request.param == "compiled":
        if usable_numba() is None:
            pytest.skip("numba not installed or NUMBA_DISABLE_JIT set")
    else:
        monkeypatch.setattr(lrf_module, "load_flat_sample_kernel", lambda: (flat_sample_kernel, True))
    return request.param


@pytest.mark.parametrize("flight", FLIGHTS)
@pytest.mark.parametrize("rate_hz, cycle_s", [(10.0, 0.02), (7.0, 0.02), (50.0, 0.03)])
def test_flat_kernel_gives_the_python_samples_bits(kernel, flight, rate_hz, cycle_s):
    """Over flat terrain the kernel's readings are the Python sample's, bit for bit, with every
    part of a sample in play (more than a block of draws; at 50 Hz from a 0.03 s loop, two
    samples in some calls, extrapolated back from the state)."""
    plant = descent(flat(SITE), *FLIGHTS[flight])
    cfg = LrfConfig(rate_hz=rate_hz, **{**EVERYTHING, "degrade_per_mps": 0.004 if flight == "tumbling" else 0.01,
                                         "degrade_floor": 0.4 if flight == "tumbling" else 0.5})
    sensor, readings = fly_both(plant, cfg, cycle_s)
    assert sensor.compiled_samples
    assert sensor.samples_taken > 256  # a second block of draws was drawn
    new = [r for r in readings if r.new]
    valid = [r for r in new if r.valid]
    # acquired part-way, then some dropped, out of range or pointing at the sky
    assert not new[0].valid and len(valid) > len(new) // 10 and len(new) - len(valid) > len(new) // 4


def test_flat_kernel_powered_off_and_clamped_like_python(kernel):
    """Switched off (``powered``) for a while, the kernel reads nothing valid, as the Python sample
    does, and goes on with the same draws once on again; outliers (3 km 1-sigma) that would make
    the range negative are read as 0 m by both."""
    plant = tumbling_descent(flat(SITE))
    cfg = LrfConfig(**{**EVERYTHING, "dropout_prob": 0.0, "outlier_prob": 0.5, "outlier_sigma_m": 3000.0})
    a, b = LaserRangefinder(cfg, np.random.default_rng(5)), LaserRangefinder(cfg, np.random.default_rng(5))
    x = plant.kernel_arrays()[0]
    clamped = valid_on = 0
    for i in range(1000):
        on = not 400 <= i < 600  # off from 8 s to 12 s, when it reads the ground
        a.powered = b.powered = on
        s = plant.state
        ra, rb = a.update_from_vector(s.t_s, x, plant.terrain), b.update(s.t_s, s, plant.terrain)
        assert bits(ra) == bits(rb)
        if ra.new:
            off = 8.0 - 1e-9 <= ra.sample_t_s < 12.0 - 1e-9
            assert not (off and ra.valid)
            valid_on += ra.valid and not off
            clamped += ra.valid and ra.range_m == 0.0
        plant.step(OFF, 0.02)
    assert a.compiled_samples and a.acquired and valid_on > 50 and clamped > 3


@pytest.mark.parametrize("where", ["height field", "rotating Moon", "numba off"])
def test_the_python_sample_is_used_where_the_kernel_does_not_hold(where, monkeypatch):
    """A height field (a crater under the track), a rotating Moon's terrain view (the speed over the
    ground has the surface's motion in it) and no compiled kernel: ``update_from_vector`` samples
    with ``_sample`` and reads what ``update`` reads."""
    if where == "numba off":
        monkeypatch.setattr(lrf_module, "load_flat_sample_kernel", lambda: (flat_sample_kernel, False))
        plant = tumbling_descent(flat(SITE))
    elif where == "height field":
        plant = tumbling_descent(crater(SITE, center_en_m=(800.0, 0.0), radius_m=600.0, depth_m=150.0,
                                        rim_height_m=40.0, spacing_m=20.0))
    else:
        plant = tumbling_descent(flat(SITE), moon_rotation=True)
        assert isinstance(plant.terrain, RotatingTerrain) and isinstance(plant.terrain.inner, FlatTerrain)
    sensor, readings = fly_both(plant, LrfConfig(**EVERYTHING), 0.02, seconds=20.0)
    assert not sensor.compiled_samples and any(r.valid for r in readings)


def test_kernel_reads_the_plant_state_vector_where_it_is():
    """The kernel's indices into the state vector are the plant's STATE_FIELDS."""
    assert [STATE_FIELDS[i] for i in (lrf_module._X_T, lrf_module._X_R, lrf_module._X_V, lrf_module._X_Q)] == \
        ["t_s", "r_x", "v_x", "q_w"]
    assert STATE_FIELDS[lrf_module._X_R:lrf_module._X_R + 3] == ("r_x", "r_y", "r_z")
    assert STATE_FIELDS[lrf_module._X_Q:lrf_module._X_Q + 4] == ("q_w", "q_x", "q_y", "q_z")
