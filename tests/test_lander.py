"""Reference lander data file and validation of bad lander files."""

import math
import re
from pathlib import Path

import pytest

from harness.errors import ConfigError, FsilError
from harness.frames import G0, MOON_GM, MOON_RADIUS
from harness.lander import DATA_DIR, LanderSpec, load_lander

REF = DATA_DIR / "reference.toml"


def test_reference_lander_numbers():
    L = load_lander("reference")
    assert L.name == "reference"
    assert L.wet_mass_kg == pytest.approx(1000.0)           # ~1,000 kg class at PDI
    assert L.thrust_max_n == 4000.0 and L.throttle_min == 0.2 and L.isp_s == 320.0
    assert L.dry_mass_kg + L.propellant_load("terminal_descent") + L.rcs_propellant_mass_kg == pytest.approx(700.0)
    assert L.propellant_load("powered_descent") == L.propellant_mass_kg
    g = MOON_GM / MOON_RADIUS ** 2
    # T/W > 2 at PDI; the lander can hover at 700 kg and descend at minimum throttle
    assert L.thrust_max_n / (L.wet_mass_kg * g) > 2.0
    hover_700 = 700.0 * g / L.thrust_max_n
    assert L.throttle_min < hover_700 < L.throttle_max
    # ideal delta-v of the full load covers a ~2 km/s powered descent
    assert L.isp_s * G0 * math.log(L.wet_mass_kg / (L.wet_mass_kg - L.propellant_mass_kg)) > 2000.0
    assert load_lander(REF) == L  # by path too
    with pytest.raises(KeyError):
        L.propellant_load("nope")


def write_variant(tmp_path, edit):
    text = REF.read_text()
    new = edit(text)
    assert new != text
    p = tmp_path / "bad_lander.toml"
    p.write_text(new)
    return p


def expect_error(p, *needles):
    with pytest.raises(ConfigError) as ei:
        load_lander(p)
    msg = str(ei.value)
    assert str(p) in msg, msg
    for n in needles:
        assert n in msg, msg
    assert isinstance(ei.value, ValueError) and isinstance(ei.value, FsilError)
    return msg


def test_missing_field(tmp_path):
    p = write_variant(tmp_path, lambda t: re.sub(r"(?m)^isp_s = 320\.0.*\n", "", t, count=1))
    expect_error(p, "missing", "[engine] isp_s", "allowed: 1 <= isp_s <= 10000")


def test_negative_mass(tmp_path):
    p = write_variant(tmp_path, lambda t: t.replace("dry_mass_kg = 430.0", "dry_mass_kg = -430.0"))
    expect_error(p, "[lander] dry_mass_kg", "-430", "allowed: 1 <= dry_mass_kg")
    p = write_variant(tmp_path, lambda t: t.replace("propellant_mass_kg = 550.0", "propellant_mass_kg = -1.0"))
    expect_error(p, "[lander] propellant_mass_kg", "allowed: 0 <= propellant_mass_kg")


def test_min_throttle_above_max(tmp_path):
    p = write_variant(tmp_path, lambda t: t.replace("throttle_min = 0.2", "throttle_min = 0.95")
                      .replace("throttle_max = 1.0", "throttle_max = 0.9"))
    expect_error(p, "[engine] throttle_min", "0.95", "throttle_max", "allowed: 0 <= throttle_min <= throttle_max")


def test_throttle_out_of_range(tmp_path):
    p = write_variant(tmp_path, lambda t: t.replace("throttle_max = 1.0", "throttle_max = 1.5"))
    expect_error(p, "[engine] throttle_max", "allowed: 0 < throttle_max <= 1")


def test_unknown_key(tmp_path):
    p = write_variant(tmp_path, lambda t: t.replace("isp_s = 320.0", "isp_s = 320.0\nisp_vac_s = 330.0", 1))
    expect_error(p, "unknown key 'isp_vac_s' in [engine]", "allowed keys", "thrust_max_n")
    p = write_variant(tmp_path, lambda t: t + "\n[gimbal]\nrange_rad = 0.1\n")
    expect_error(p, "unknown section [gimbal]", "allowed sections")


def test_wrong_type_and_bad_inertia(tmp_path):
    p = write_variant(tmp_path, lambda t: t.replace("thrust_max_n = 4000.0", 'thrust_max_n = "4 kN"'))
    expect_error(p, "[engine] thrust_max_n", "'4 kN'", "not a number", "0.001 <= thrust_max_n <= 1e+08")
    p = write_variant(tmp_path, lambda t: t.replace("[[520.0, 0.0, 0.0]", "[[-520.0, 0.0, 0.0]"))
    expect_error(p, "[lander] inertia_body_kg_m2", "positive definite")
    p = write_variant(tmp_path, lambda t: t.replace("[0.0, 0.0, 640.0]]", "[0.0, 0.0, 2000.0]]", 1))
    expect_error(p, "[lander] inertia_body_kg_m2", "triangle")
    p = write_variant(tmp_path, lambda t: t.replace("terminal_descent = 250.0", "terminal_descent = 900.0"))
    expect_error(p, "[propellant_loads] terminal_descent", "allowed: 0 <= terminal_descent <= propellant_mass_kg")


def test_not_toml_and_missing_file(tmp_path):
    p = tmp_path / "broken.toml"
    p.write_text("[lander\nname=")
    expect_error(p, "not valid TOML")
    with pytest.raises(ConfigError, match="not found"):
        load_lander(tmp_path / "nope.toml")


def test_in_memory_spec_is_validated():
    with pytest.raises(ConfigError, match=r"throttle_min.*allowed"):
        load_lander().replace(throttle_min=0.5, throttle_max=0.4)
    with pytest.raises(ConfigError, match="<memory>"):
        LanderSpec(name="x", dry_mass_kg=-1.0, propellant_mass_kg=1.0,
                   inertia_body_kg_m2=((1, 0, 0), (0, 1, 0), (0, 0, 1)), thrust_max_n=1.0,
                   throttle_min=0.1, throttle_max=1.0, isp_s=300.0)
