"""The validation layer (harness/validation.py): file reading and schema errors name the file,
the key, the bad value and what is allowed."""
from __future__ import annotations

from typing import Annotated, Literal

import pytest
from pydantic import Field, model_validator

from harness.errors import ConfigError
from harness.validation import KeyProblem, Model, read_toml, validate


class _Disp(Model):
    mean: float
    sigma: float = Field(ge=0, description="m")


class _Camp(Model):
    runs_per_point: int = Field(1, ge=1, le=100_000)
    sampling: Literal["random", "lhs"] = "lhs"
    weights: list[Annotated[float, Field(ge=0)]] = []
    flag: bool = False

    @model_validator(mode="after")
    def _positive_sum(self):
        if self.weights and sum(self.weights) == 0:
            raise KeyProblem("weights", self.weights, "weights with a positive sum")
        return self


class _Doc(Model):
    campaign: _Camp
    dispersions: dict[str, _Disp] = {}


def _err(doc) -> str:
    with pytest.raises(ConfigError) as ei:
        validate(_Doc, doc, "spec.toml")
    return str(ei.value)


@pytest.mark.parametrize("doc, must", [
    ({"campaign": {"runs_per_point": 10**7}}, ["[campaign] runs_per_point", "10000000", "1 <= runs_per_point <= 100000"]),
    ({"campaign": {"runs_per_point": 1e7}}, ["[campaign] runs_per_point", "an integer"]),
    ({"campaign": {"runs_per_point": True}}, ["[campaign] runs_per_point = true", "an integer"]),
    ({"campaign": {"flag": 1}}, ["[campaign] flag = 1", "true or false"]),
    ({"campaign": {"sampling": "grid"}}, ["[campaign] sampling = 'grid'", "allowed: random, lhs"]),
    ({"campaign": {"zz": 1}}, ["unknown key 'zz' in [campaign]", "allowed keys: runs_per_point, sampling, weights, flag"]),
    ({}, ["[campaign] is missing"]),
    ({"campaign": 3}, ["[campaign] must be a table"]),
    ({"campaign": {}, "dispersions": {"altitude_m": {"mean": 1, "sigma": -3}}},
     ["[dispersions.altitude_m] sigma = -3", "sigma >= 0 (m)"]),
    ({"campaign": {}, "dispersions": {"altitude_m": {"mean": float("nan"), "sigma": 3}}},
     ["[dispersions.altitude_m] mean = nan", "finite"]),
    ({"campaign": {}, "dispersions": {"altitude_m": {"mean": 1, "sigma": float("inf")}}},
     ["[dispersions.altitude_m] sigma = inf", "finite"]),
    ({"campaign": {"weights": [0, 0]}}, ["[campaign] weights = [0.0, 0.0]", "positive sum"]),
    ({"campaign": {"weights": [1, -1]}}, ["[campaign] weights[1] = -1", "weights[1] >= 0"]),
])
def test_schema_errors_name_file_key_value_and_allowed(doc, must):
    msg = _err(doc)
    assert msg.startswith("spec.toml: ")
    for m in must:
        assert m in msg, (m, msg)


def test_valid_document_builds_the_model():
    d = validate(_Doc, {"campaign": {"runs_per_point": 3, "weights": (1, 2)},
                        "dispersions": {"a": {"mean": 1, "sigma": 2}}}, "x")
    assert d.campaign.runs_per_point == 3 and d.dispersions["a"].sigma == 2.0


@pytest.mark.parametrize("content, must", [
    ("x = " + "9" * 400 + "\n", ["x = ", "400 digits", "64-bit"]),
    ("[t]\ny = [1, nan]\n", ["[t] y[1] = nan", "finite"]),
    ("[t]\nz = -inf\n", ["[t] z = -inf", "finite"]),
    (b"a = 1\n\xff\xfe = 2", ["not UTF-8", "offset 6", "line 2"]),
    ("a = = 1\n", ["not valid TOML", "line 1"]),
])
def test_reading_hostile_files_gives_config_errors(tmp_path, content, must):
    p = tmp_path / "bad.toml"
    (p.write_bytes if isinstance(content, bytes) else p.write_text)(content)
    with pytest.raises(ConfigError) as ei:
        read_toml(p, what="scenario file")
    msg = str(ei.value)
    assert msg.startswith(str(p))
    for m in must:
        assert m in msg, (m, msg)


def test_reading_missing_file_and_folder(tmp_path):
    with pytest.raises(ConfigError, match="no such scenario file"):
        read_toml(tmp_path / "nope.toml", what="scenario file")
    with pytest.raises(ConfigError, match="is a folder"):
        read_toml(tmp_path, what="scenario file")


@pytest.mark.parametrize("content", [
    "[" + ".".join(["a"] * 20_000) + "]\nx = 1\n",            # a table header 20,000 levels deep
    "a = " + "{b = " * 100 + "1" + "}" * 100 + "\n",          # inline tables 100 deep (tomllib reads it)
], ids=["dotted_header", "inline_tables"])
def test_deeply_nested_file_is_refused_naming_the_depth(tmp_path, content, capsys):
    """The old reader let a 20,000-level [a.a.a...] header through; the schema check then recursed
    into a RecursionError traceback from every command that reads a TOML file."""
    from harness.cli import main

    p = tmp_path / "deep.toml"
    p.write_text(content)
    with pytest.raises(ConfigError, match=r"nested \d+ levels deep; allowed: at most 64") as ei:
        read_toml(p, what="scenario file")
    assert str(ei.value).startswith(str(p))
    for argv in (["run", str(p), "--out", str(tmp_path / "o")], ["conform", "--rig", str(p)],
                 ["campaign", str(p), "--db", str(tmp_path / "c.sqlite"), "--no-progress"]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert "levels deep" in err and "Traceback" not in err
    assert not (tmp_path / "c.sqlite").exists()


def test_a_fifo_is_refused_instead_of_blocking_the_reader(tmp_path):
    """The old reader opened a named pipe given as a scenario file and blocked for ever."""
    import os

    import threading

    fifo = tmp_path / "scenario.toml"
    os.mkfifo(fifo)
    # a writer that ends the pipe after 2 s, so that a reader which does open it is not stuck
    writer = threading.Timer(2.0, lambda: os.close(os.open(fifo, os.O_WRONLY)))
    writer.start()
    try:
        with pytest.raises(ConfigError, match="not a regular file"):
            read_toml(fifo, what="scenario file")
    finally:
        writer.cancel()
        if writer.is_alive() or writer.finished.is_set():
            try:  # the writer is blocked until someone opens the read end
                os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
            except OSError:
                pass
        writer.join()


def test_a_device_that_never_ends_is_refused_instead_of_read_into_memory(tmp_path):
    """/dev/zero has size 0, so the size limit let it through and the old reader read it until
    memory ran out. Checked in a child process with its memory capped at 1 GB."""
    import subprocess
    import sys
    from pathlib import Path

    if not Path("/dev/zero").exists():
        pytest.skip("no /dev/zero on this system")
    code = ("import resource, sys\n"
            "resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))\n"
            "from harness.errors import ConfigError\n"
            "from harness.validation import read_toml\n"
            "try:\n    read_toml('/dev/zero', what='campaign spec')\n"
            "except ConfigError as exc:\n    print(exc)\n    sys.exit(0)\n"
            "sys.exit(3)\n")
    cp = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                        cwd=Path(__file__).resolve().parent.parent)
    assert cp.returncode == 0, cp.stderr[-500:]
    assert "/dev/zero: the campaign spec is not a regular file" in cp.stdout
