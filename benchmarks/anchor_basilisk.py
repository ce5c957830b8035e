"""The Basilisk anchor of the speed figures (issue 15, docs/performance.md): what Basilisk, the
open-source astrodynamics framework, measures on this machine for the set-ups fsil's loop and
campaign figures are set against, so a benchmark prints "fsil N = k x Basilisk" beside its number.

    python benchmarks/anchor_basilisk.py                 # the anchor (cached; measured if none)
    python benchmarks/anchor_basilisk.py --refresh       # measure again now (~30 s), add to the history
    python benchmarks/anchor_basilisk.py --instructions  # also count instructions per step (callgrind)
    python benchmarks/anchor_basilisk.py --json          # the cached record as JSON

Basilisk is installed from the package index (``bsk``, pinned by BSK_REQUIREMENT) into a
throwaway virtual environment of its own, ``$FSIL_BENCH_CACHE/bsk-venv`` (default
``~/.cache/fsil-bench``), never into fsil's dependencies; the measurement runs there, in a
subprocess that runs this same file with ``--child``. The result is cached as
``basilisk-anchor.json`` beside the venv, with Basilisk's version, the date and the load average
of each sitting; each figure is the best over the sittings (the least disturbed, as fsil's own
best-of-N), so several benchmarks print ratios without re-running Basilisk. Nothing here raises:
when Basilisk cannot be installed or run (no network, no wheel for this Python), ``anchor()``
says why and the benchmarks print their figures without ratio.

What is measured (all at Basilisk's 10 ms task rate, one RK4 step of the dynamics per step):

* ``bare``: a 1000 kg lander (``spacecraft.Spacecraft``, 6 DOF) in the Moon's point-mass
  gravity with a constant body-fixed thrust (``extForceTorque``) and an ``imuSensor`` with
  noise and random walk: steps per second of wall time, best of several, set-up excluded.
  No flight software, no link, no record.
* ``python_fsw``: the same plus a flight-software module written in Python (a ``SysModel``
  that reads the IMU message and writes the thrust command each step, a vertical-speed hold).
* ``mc_controller``: Basilisk's own Monte Carlo ``Controller`` on one process
  (``setThreadCount(1)``), 60 s descents of the ``bare`` set-up with the initial velocity
  dispersed, the lander's state retained at 50 Hz: runs per second. The Controller pauses one
  second (``time.sleep(1)`` in ``SimulationExecutor``) after handing each run's retained data
  to its writer process, so this figure is mostly that pause.
* ``mc_loop``: the same runs without the Controller: a fresh simulation built, flown 60 s and
  its state recorder read per run, in a loop: runs per second of Basilisk's own work. The
  stricter anchor for a campaign.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STEP_S = 0.01  # Basilisk task period, s (100 Hz)
DESCENT_S = 60.0  # simulated length of one Monte Carlo descent, s
MC_RUNS = 12  # descents per Monte Carlo figure
STEP_REPEATS = 20  # best-of count for the steps-per-second figures (as bench_descent.py --repeat 20)
STEP_SPAN_S = 50.0  # simulated seconds per timed repeat (5,000 steps)
INSTR_SHORT_S, INSTR_LONG_S = 1.0, 11.0  # simulated seconds of the two callgrind runs

CACHE_DIR = Path(os.environ.get("FSIL_BENCH_CACHE", Path.home() / ".cache" / "fsil-bench"))
VENV = CACHE_DIR / "bsk-venv"
RESULT = CACHE_DIR / "basilisk-anchor.json"
FAILED = CACHE_DIR / "basilisk-anchor-failed.txt"  # why the last try failed
RETRY_AFTER_S = 6 * 3600  # a failure is tried again after this, or with --refresh
HISTORY_LEN = 20  # sittings kept in the cache
SAME_SITTING_S = 1800  # a Basilisk sitting this recent is also compared side by side, s
BEST_OF_HISTORY = ("bare_steps_per_s", "python_fsw_steps_per_s", "mc_controller_runs_per_s", "mc_loop_runs_per_s")
PACKAGE = "bsk"
BSK_REQUIREMENT = os.environ.get("FSIL_BENCH_BSK", "bsk==2.12.1")  # the anchor's version, fixed
INSTALL_TIMEOUT_S = 1800
MEASURE_TIMEOUT_S = 1200


# ----------------------------------------------------------------------------------------------
# fsil side: venv, cache, ratios (standard library only)
# ----------------------------------------------------------------------------------------------

class AnchorUnavailable(RuntimeError):
    """Basilisk could not be installed or run here; the message says why."""


def _venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _base_python() -> str:
    """The interpreter to build the venv from: the one running, without its own venv."""
    return getattr(sys, "_base_executable", None) or sys.executable


def ensure_basilisk(log=print) -> Path:
    """The Python of the throwaway venv with ``bsk`` installed (created on first use)."""
    py = _venv_python()
    if py.exists() and _run([str(py), "-c", "import Basilisk"], 120).returncode == 0:
        return py
    log(f"[anchor] installing Basilisk ('{BSK_REQUIREMENT}' from the package index) into {VENV} "
        "(once; this may take minutes)")
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    if not py.exists():
        r = _run([_base_python(), "-m", "venv", str(VENV)], 300)
        if r.returncode != 0:
            raise AnchorUnavailable(f"cannot create the venv {VENV}: {_tail(r)}")
    r = _run([str(py), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", BSK_REQUIREMENT],
             INSTALL_TIMEOUT_S)
    if r.returncode != 0:
        raise AnchorUnavailable(f"'pip install {BSK_REQUIREMENT}' failed in {VENV}: {_tail(r)}")
    r = _run([str(py), "-c", "import Basilisk"], 120)
    if r.returncode != 0:
        raise AnchorUnavailable(f"Basilisk installed but does not import: {_tail(r)}")
    return py


def measure(log=print, forget: bool = False) -> dict:
    """Install if needed, measure Basilisk in its venv now, add the sitting to the cached
    history and return the record: each speed figure is the best over the history (as fsil's
    own figures are best-of-N: the least disturbed measurement), ``latest`` is this sitting."""
    py = ensure_basilisk(log)
    log(f"[anchor] measuring Basilisk in {VENV} (about a minute)")
    load_before = os.getloadavg()
    r = _run([str(py), str(Path(__file__).resolve()), "--child"], MEASURE_TIMEOUT_S,
             cwd=str(CACHE_DIR))
    if r.returncode != 0:
        raise AnchorUnavailable(f"the Basilisk measurement failed: {_tail(r)}")
    try:
        sitting = json.loads(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError) as e:
        raise AnchorUnavailable(f"the Basilisk measurement printed no result ({e}): {_tail(r)}")
    sitting.update(
        measured_utc=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        load_average_before=round(load_before[0], 2),
        load_average_after=round(os.getloadavg()[0], 2),
    )
    old = _cached()
    same = (old and not forget and old.get("bsk_version") == sitting["bsk_version"]
            and old.get("host") == platform.node() and old.get("cpu_model") == _cpu_model())
    history = (old.get("history", []) if same else []) + [sitting]
    history = history[-HISTORY_LEN:]
    rec = dict(sitting, available=True, cpus=os.cpu_count(), cpu_model=_cpu_model(),
               host=platform.node(), sittings=len(history), first_utc=history[0]["measured_utc"],
               latest=sitting, history=history)
    for key in BEST_OF_HISTORY:
        best = max(history, key=lambda h: h[key])
        rec[key] = best[key]
        rec[key + "_measured"] = f"{best['measured_utc']}, load average {best['load_average_before']:.2f}"
    if same:  # instruction counts do not move with load
        rec.update({k: v for k, v in old.items() if "instructions" in k})
    _save(rec)
    return rec


def _cached() -> dict | None:
    try:
        rec = json.loads(RESULT.read_text())
    except (OSError, ValueError):
        return None
    return rec if rec.get("available") and rec.get("bare_steps_per_s") else None


def _save(rec: dict) -> None:
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(rec, indent=2) + "\n")


def count_instructions(log=print) -> dict:
    """Instructions per Basilisk step (bare and with the Python FSW module), counted by valgrind's
    callgrind as benchmarks/bench_instructions.py counts fsil's cycles: two runs of
    INSTR_SHORT_S and INSTR_LONG_S simulated seconds, the difference over the difference in
    steps, so Basilisk's import and set-up cancel out. Does not move with the host's load.
    About seven minutes (each run starts Basilisk under valgrind)."""
    if not shutil.which("valgrind"):
        raise AnchorUnavailable("valgrind is not installed (Debian: apt-get install valgrind)")
    py = ensure_basilisk(log)
    out = {}
    for key, fsw in (("bare_instructions_per_step", "0"), ("python_fsw_instructions_per_step", "1")):
        counts = []
        for span_s in (INSTR_SHORT_S, INSTR_LONG_S):
            log(f"[anchor] callgrind: {key.split('_instr')[0]} set-up, {span_s:g} simulated s")
            with tempfile.TemporaryDirectory(prefix="bsk-cg-") as tmp:
                cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/cg.out",
                       str(py), str(Path(__file__).resolve()), "--child-fly", str(span_s), fsw]
                if shutil.which("setarch"):
                    cmd = ["setarch", "-R"] + cmd
                r = _run(cmd, MEASURE_TIMEOUT_S, cwd=str(CACHE_DIR))
            m = re.search(r"Collected : (\d+)", r.stderr or "")
            if r.returncode != 0 or not m:
                raise AnchorUnavailable(f"callgrind run of Basilisk failed: {_tail(r)}")
            counts.append(int(m.group(1)))
        out[key] = round((counts[1] - counts[0]) / round((INSTR_LONG_S - INSTR_SHORT_S) / STEP_S))
    out["instructions_span_steps"] = round((INSTR_LONG_S - INSTR_SHORT_S) / STEP_S)
    return out


def anchor(refresh: bool = False, log=print, forget: bool = False) -> dict:
    """The Basilisk anchor record: cached unless ``refresh`` (which adds a sitting to the
    history; ``forget`` drops the history first); never raises.

    Keys when ``available``: ``bsk_version``; ``bare_steps_per_s``, ``python_fsw_steps_per_s``,
    ``mc_controller_runs_per_s``, ``mc_loop_runs_per_s`` (per process), each the best over the
    cached sittings (``history``, ``sittings``; ``<key>_measured`` says when and at what load);
    ``latest`` (the last sitting's figures, ``measured_utc``, ``load_average_before``/``_after``);
    ``bare_instructions_per_step`` and ``python_fsw_instructions_per_step`` once counted; and the
    set-up constants. Otherwise ``available`` is False and ``reason`` says why.
    """
    rec = None if refresh else _cached()
    if rec:
        return rec
    if not refresh:  # a recent failure is not retried by every benchmark (an install try costs ~30 s)
        try:
            if time.time() - FAILED.stat().st_mtime < RETRY_AFTER_S:
                return {"available": False,
                        "reason": FAILED.read_text().strip() + " (cached; --refresh tries again)"}
        except OSError:
            pass
    try:
        rec = measure(log, forget=forget)
        FAILED.unlink(missing_ok=True)
        return rec
    except (AnchorUnavailable, OSError, subprocess.SubprocessError) as e:
        try:
            CACHE_DIR.mkdir(parents=True, exist_ok=True)
            FAILED.write_text(str(e) + "\n")
        except OSError:
            pass
        return {"available": False, "reason": str(e)}


def provenance(rec: dict) -> str:
    """Where the anchor figures come from: version, sittings, the latest sitting and its load."""
    if not rec.get("available"):
        return f"Basilisk anchor unavailable: {rec.get('reason', 'unknown reason')}"
    last = rec.get("latest", rec)
    return (f"Basilisk {rec['bsk_version']} (Python {rec['python']}): best of {rec.get('sittings', 1)} "
            f"sitting(s) since {rec.get('first_utc', rec['measured_utc'])} (bare best at "
            f"{rec.get('bare_steps_per_s_measured', rec['measured_utc'])}); latest {last['measured_utc']}, "
            f"load average {last['load_average_before']:.2f} -> {last['load_average_after']:.2f}: bare "
            f"{last['bare_steps_per_s']:,} steps/s, Python FSW {last['python_fsw_steps_per_s']:,}, MC loop "
            f"{last['mc_loop_runs_per_s']:.2f} runs/s; measure again: python benchmarks/anchor_basilisk.py --refresh")


def loop_ratio_line(fsil_cycles_per_s: float, rec: dict) -> str:
    """fsil's closed-loop cycles per second against Basilisk's bare and Python-FSW stepping."""
    if not rec.get("available"):
        return f"fsil {fsil_cycles_per_s:,.0f} cycles/s (no Basilisk ratio: {rec.get('reason')})"
    bare, fsw = rec["bare_steps_per_s"], rec["python_fsw_steps_per_s"]
    line = (f"fsil {fsil_cycles_per_s:,.0f} cycles/s = {fsil_cycles_per_s / bare:.2f} x Basilisk bare "
            f"dynamics {bare:,.0f} steps/s (6-DOF + Moon gravity + thrust + IMU, no flight code, no link)"
            f"; = {fsil_cycles_per_s / fsw:.2f} x Basilisk with a Python FSW module {fsw:,.0f} steps/s")
    last = _same_sitting(rec)
    if last:
        line += (f"; side by side with Basilisk's sitting of {last['measured_utc']} (load average "
                 f"{last['load_average_before']:.2f}): {fsil_cycles_per_s / last['bare_steps_per_s']:.2f} x bare "
                 f"{last['bare_steps_per_s']:,}, {fsil_cycles_per_s / last['python_fsw_steps_per_s']:.2f} x "
                 f"Python FSW {last['python_fsw_steps_per_s']:,}")
    return line


def _same_sitting(rec: dict) -> dict | None:
    """The latest Basilisk sitting if it was measured within SAME_SITTING_S of now, else None."""
    last = rec.get("latest")
    if not last:
        return None
    try:
        t = _dt.datetime.strptime(last["measured_utc"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=_dt.timezone.utc)
    except (KeyError, ValueError):
        return None
    age_s = (_dt.datetime.now(_dt.timezone.utc) - t).total_seconds()
    return last if 0 <= age_s <= SAME_SITTING_S else None


def instructions_ratio_line(fsil_instructions_per_cycle: float, rec: dict) -> str:
    """fsil's instructions per closed-loop cycle against Basilisk's per bare step (callgrind)."""
    head = f"fsil {fsil_instructions_per_cycle:,.0f} instructions/cycle"
    if not rec.get("bare_instructions_per_step"):
        return f"{head} (no Basilisk count: python benchmarks/anchor_basilisk.py --instructions)"
    bare, fsw = rec["bare_instructions_per_step"], rec["python_fsw_instructions_per_step"]
    return (f"{head} = {fsil_instructions_per_cycle / bare:.2f} x the instructions of a Basilisk bare step "
            f"({bare:,}), {fsil_instructions_per_cycle / fsw:.2f} x those of a step with a Python FSW module ({fsw:,})")


def campaign_ratio_line(fsil_runs_per_s_per_core: float, rec: dict,
                        mean_descent_s: float | None = None) -> str:
    """fsil's campaign runs/s per core against Basilisk's Monte Carlo runs/s per process.

    ``mean_descent_s`` (simulated seconds of fsil's average run) adds the ratio per simulated
    second, since Basilisk's runs are DESCENT_S long and fsil's M2 runs about twice that."""
    head = f"campaign {fsil_runs_per_s_per_core:.2f} runs/s/core"
    if not rec.get("available"):
        return f"{head} (no Basilisk ratio: {rec.get('reason')})"
    ctl, loop, bsk_s = rec["mc_controller_runs_per_s"], rec["mc_loop_runs_per_s"], rec["descent_s"]
    line = (f"{head} = {fsil_runs_per_s_per_core / ctl:.1f} x Basilisk Monte Carlo Controller "
            f"{ctl:.2f} runs/s/process ({bsk_s:.0f} s descents, data retained); = "
            f"{fsil_runs_per_s_per_core / loop:.2f} x Basilisk's own work per run {loop:.2f} runs/s "
            f"(fresh sims in a loop, no Controller)")
    last = _same_sitting(rec)
    if last:
        line += (f"; side by side with Basilisk's sitting of {last['measured_utc']} (load average "
                 f"{last['load_average_before']:.2f}): {fsil_runs_per_s_per_core / last['mc_controller_runs_per_s']:.1f} x "
                 f"Controller {last['mc_controller_runs_per_s']:.2f}, "
                 f"{fsil_runs_per_s_per_core / last['mc_loop_runs_per_s']:.2f} x loop {last['mc_loop_runs_per_s']:.2f}")
    if mean_descent_s:
        fsil_sim = fsil_runs_per_s_per_core * mean_descent_s
        line += (f"; per simulated second: fsil {fsil_sim:,.0f} s/s/core (runs of {mean_descent_s:.0f} s "
                 f"on average) = {fsil_sim / (loop * bsk_s):.2f} x Basilisk's loop {loop * bsk_s:,.0f} s/s")
    return line


def _run(cmd, timeout_s, cwd=None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=env, cwd=cwd)
    except subprocess.TimeoutExpired as e:
        raise AnchorUnavailable(f"{cmd[0]} {' '.join(cmd[1:3])} took longer than {timeout_s} s") from e
    except FileNotFoundError as e:
        raise AnchorUnavailable(f"cannot run {cmd[0]}: {e}") from e


def _tail(r: subprocess.CompletedProcess, n: int = 400) -> str:
    text = (r.stderr or "") + (r.stdout or "")
    return " ".join(text.strip()[-n:].split()) or f"exit status {r.returncode}"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


# ----------------------------------------------------------------------------------------------
# Basilisk side: runs in the throwaway venv (``--child``); imports Basilisk
# ----------------------------------------------------------------------------------------------

LANDER_MASS_KG = 1000.0
LANDER_INERTIA_KGM2 = (900.0, 800.0, 600.0)  # principal moments about the centre of mass
START_ALTITUDE_M = 1500.0  # above the Moon's mean radius
START_DESCENT_RATE_MPS = 40.0
THRUST_N = 2290.0  # 1.41 x lunar weight: brakes 40 m/s to ~0 in 60 s, ~300 m up
MOON_GM_M3PS2 = 4.902799e12


def _build_descent(python_fsw: bool = False, record_state_s: float | None = None,
                   v_down_mps: float = START_DESCENT_RATE_MPS):
    """One Basilisk simulation of the lander: (sim, recorder or None). Body x points up (the
    lander starts on the inertial x axis with identity attitude), so thrust is +x body."""
    import numpy as np
    from Basilisk.architecture import messaging, sysModel
    from Basilisk.simulation import extForceTorque, imuSensor, spacecraft
    from Basilisk.utilities import SimulationBaseClass, macros, simIncludeGravBody

    sim = SimulationBaseClass.SimBaseClass()
    proc = sim.CreateNewProcess("dynamics")
    proc.addTask(sim.CreateNewTask("dynTask", macros.sec2nano(STEP_S)))

    lander = spacecraft.Spacecraft()
    lander.ModelTag = "lander"
    lander.hub.mHub = LANDER_MASS_KG
    lander.hub.r_BcB_B = [[0.0], [0.0], [0.0]]
    lander.hub.IHubPntBc_B = np.diag(LANDER_INERTIA_KGM2).tolist()
    grav = simIncludeGravBody.gravBodyFactory()
    moon = grav.createMoon()
    moon.isCentralBody = True
    grav.addBodiesTo(lander)
    r_moon_m = moon.radEquator
    lander.hub.r_CN_NInit = [[r_moon_m + START_ALTITUDE_M], [0.0], [0.0]]
    lander.hub.v_CN_NInit = [[-v_down_mps], [5.0], [0.0]]
    lander.hub.sigma_BNInit = [[0.0], [0.0], [0.0]]
    lander.hub.omega_BN_BInit = [[0.0], [0.0], [0.0]]
    sim.AddModelToTask("dynTask", lander, 10)

    engine = extForceTorque.ExtForceTorque()
    engine.ModelTag = "engine"
    engine.extForce_B = [[THRUST_N], [0.0], [0.0]]
    lander.addDynamicEffector(engine)
    sim.AddModelToTask("dynTask", engine, 9)

    imu = imuSensor.ImuSensor()
    imu.ModelTag = "imu"
    imu.scStateInMsg.subscribeTo(lander.scStateOutMsg)
    imu.setBodyToPlatformDCM(0.0, 0.0, 0.0)
    imu.PMatrixAccel = (np.eye(3) * 1e-3).tolist()
    imu.PMatrixGyro = (np.eye(3) * 1e-5).tolist()
    imu.setWalkBoundsAccel(np.array([1e-2] * 3))
    imu.setWalkBoundsGyro(np.array([1e-4] * 3))
    imu.setErrorBoundsAccel([1e-2] * 3)
    imu.setErrorBoundsGyro([1e-4] * 3)
    sim.AddModelToTask("dynTask", imu, 8)

    if python_fsw:
        class VerticalSpeedHold(sysModel.SysModel):
            """Flight software in Python: integrates the IMU's velocity increments along body x
            and commands the thrust that holds a 2 m/s descent (P control on the estimate)."""

            def __init__(self):
                super().__init__()
                self.imuInMsg = messaging.IMUSensorMsgReader()
                self.cmdOutMsg = messaging.CmdForceBodyMsg()
                self.v_up_est_mps = -v_down_mps

            def Reset(self, currentSimNanos):
                self.v_up_est_mps = -v_down_mps

            def UpdateState(self, currentSimNanos):
                meas = self.imuInMsg()
                # IMU velocity increments are non-gravitational: add the gravity loss
                self.v_up_est_mps += meas.DVFramePlatform[0] - 1.62 * STEP_S
                thrust = LANDER_MASS_KG * (1.62 + 0.5 * (-2.0 - self.v_up_est_mps))
                cmd = messaging.CmdForceBodyMsgPayload()
                cmd.forceRequestBody = [min(max(thrust, 0.0), 4000.0), 0.0, 0.0]
                self.cmdOutMsg.write(cmd, currentSimNanos, self.moduleID)

        fsw = VerticalSpeedHold()
        fsw.ModelTag = "fsw"
        fsw.imuInMsg.subscribeTo(imu.sensorOutMsg)
        engine.cmdForceBodyInMsg.subscribeTo(fsw.cmdOutMsg)
        engine.extForce_B = [[0.0], [0.0], [0.0]]
        sim.AddModelToTask("dynTask", fsw, 7)
        sim.fsw = fsw  # keep the Python object alive as long as the sim

    rec = None
    if record_state_s is not None:
        rec = lander.scStateOutMsg.recorder(macros.sec2nano(record_state_s))
        sim.AddModelToTask("dynTask", rec)
    sim.msgRecList = {"landerState": rec} if rec is not None else {}
    sim.lander = lander
    return sim, rec


def _steps_per_s(python_fsw: bool) -> float:
    """Best of STEP_REPEATS timed spans of STEP_SPAN_S simulated seconds, set-up excluded."""
    from Basilisk.utilities import macros

    sim, _ = _build_descent(python_fsw=python_fsw)
    sim.InitializeSimulation()
    t_s = 1.0
    sim.ConfigureStopTime(macros.sec2nano(t_s))  # warm-up
    sim.ExecuteSimulation()
    best = float("inf")
    for _ in range(STEP_REPEATS):
        t_s += STEP_SPAN_S
        sim.ConfigureStopTime(macros.sec2nano(t_s))
        w0 = time.perf_counter()
        sim.ExecuteSimulation()
        best = min(best, time.perf_counter() - w0)
    return round(STEP_SPAN_S / STEP_S) / best


def _mc_create():
    """Monte Carlo creation function (module level so the Controller can copy it)."""
    sim, _ = _build_descent(record_state_s=0.02)
    return sim


def _mc_execute(sim):
    from Basilisk.utilities import macros

    sim.InitializeSimulation()
    sim.ConfigureStopTime(macros.sec2nano(DESCENT_S))
    sim.ExecuteSimulation()


def _mc_controller_runs_per_s(archive: Path) -> tuple[float, float]:
    """Basilisk's Monte Carlo Controller, one process, MC_RUNS descents with data retained:
    (runs/s, bytes archived per run: its retained-data pickle and its parameters' JSON)."""
    from Basilisk.utilities.MonteCarlo.Controller import Controller
    from Basilisk.utilities.MonteCarlo.Dispersions import NormalVectorCartDispersion
    from Basilisk.utilities.MonteCarlo.RetentionPolicy import RetentionPolicy

    mc = Controller()
    mc.setShowProgressBar(False)
    mc.setSimulationFunction(_mc_create)
    mc.setExecutionFunction(_mc_execute)
    mc.setExecutionCount(MC_RUNS)
    mc.setThreadCount(1)
    mc.setVerbose(False)
    mc.setShouldDisperseSeeds(True)
    mc.setShouldArchiveParameters(True)
    mc.setArchiveDir(str(archive) + "/")
    mc.addDispersion(NormalVectorCartDispersion(
        "lander.hub.v_CN_NInit", mean=[-START_DESCENT_RATE_MPS, 5.0, 0.0], stdDeviation=[2.0, 1.0, 0.3]))
    policy = RetentionPolicy(rate=int(0.02e9))
    policy.addMessageLog("landerState", ["r_BN_N", "v_BN_N", "sigma_BN", "omega_BN_B"])
    mc.addRetentionPolicy(policy)
    w0 = time.perf_counter()
    failed = mc.executeSimulations()
    dt = time.perf_counter() - w0
    if failed:
        raise RuntimeError(f"Basilisk Monte Carlo runs {failed} failed")
    runs = sorted(archive.glob("run*.data"))
    if len(runs) != MC_RUNS:
        raise RuntimeError(f"the Controller retained {len(runs)} of {MC_RUNS} runs")
    per_run = sum(f.stat().st_size for f in archive.glob("run*.*")) / MC_RUNS
    return MC_RUNS / dt, per_run


def _mc_loop_runs_per_s() -> tuple[float, float]:
    """Fresh simulations built, flown DESCENT_S and read back, in a loop: (runs/s, last altitude m)."""
    import numpy as np

    w0 = time.perf_counter()
    for i in range(MC_RUNS):
        sim, rec = _build_descent(record_state_s=0.02, v_down_mps=36.0 + 8.0 * i / MC_RUNS)
        _mc_execute(sim)
        r_n = np.asarray(rec.r_BN_N)
        v_n = np.asarray(rec.v_BN_N)
        if r_n.shape[0] < DESCENT_S / 0.02 or not np.isfinite(v_n).all():
            raise RuntimeError(f"descent {i} recorded {r_n.shape[0]} states")
    dt = time.perf_counter() - w0
    return MC_RUNS / dt, float(np.linalg.norm(r_n[-1]) - 1737400.0)


def _child_fly(span_s: float, python_fsw: bool) -> None:
    """Build the set-up and step it ``span_s`` simulated seconds (run under callgrind)."""
    from Basilisk.utilities import macros

    sim, _ = _build_descent(python_fsw=python_fsw)
    sim.InitializeSimulation()
    sim.ConfigureStopTime(macros.sec2nano(span_s))
    sim.ExecuteSimulation()


def _child_main() -> None:
    """Measure in the Basilisk venv and print one JSON line."""
    import importlib.metadata

    bare = _steps_per_s(python_fsw=False)
    fsw = _steps_per_s(python_fsw=True)
    loop, end_alt = _mc_loop_runs_per_s()
    with tempfile.TemporaryDirectory(prefix="bsk-mc-") as tmp:
        ctl, ctl_bytes = _mc_controller_runs_per_s(Path(tmp) / "mc")
    bare2 = _steps_per_s(python_fsw=False)  # again after the MC: the best of both sits
    print(json.dumps({
        "bsk_version": importlib.metadata.version(PACKAGE),
        "python": platform.python_version(),
        "step_s": STEP_S,
        "bare_steps_per_s": round(max(bare, bare2)),
        "python_fsw_steps_per_s": round(fsw),
        "mc_controller_runs_per_s": round(ctl, 3),
        "mc_loop_runs_per_s": round(loop, 3),
        "mc_controller_bytes_per_run": round(ctl_bytes),
        "descent_s": DESCENT_S,
        "mc_runs": MC_RUNS,
        "mc_last_descent_end_altitude_m": round(end_alt, 1),
        "step_repeats": STEP_REPEATS,
        "step_span_s": STEP_SPAN_S,
    }))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--refresh", action="store_true",
                    help="measure Basilisk again now (a sitting added to the cached history)")
    ap.add_argument("--forget", action="store_true",
                    help="with --refresh: drop the cached history first (after changing machine kind)")
    ap.add_argument("--instructions", action="store_true",
                    help="also count instructions per Basilisk step with callgrind (about 7 minutes)")
    ap.add_argument("--json", action="store_true", help="print the record as JSON")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--child-fly", nargs=2, metavar=("SECONDS", "FSW"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        _child_main()
        return 0
    if a.child_fly:
        _child_fly(float(a.child_fly[0]), a.child_fly[1] == "1")
        return 0
    rec = anchor(refresh=a.refresh or a.forget, forget=a.forget)
    if a.instructions and rec.get("available"):
        try:
            rec.update(count_instructions())
            _save(rec)
        except AnchorUnavailable as e:
            print(f"[anchor] no instruction counts: {e}")
    if a.json:
        print(json.dumps(rec, indent=2))
        return 0
    print(provenance(rec))
    if rec.get("available"):
        print(f"best of {rec.get('sittings', 1)} sitting(s) since {rec.get('first_utc', rec['measured_utc'])}:")
        print(f"  bare 6-DOF + Moon gravity + thrust + IMU at {rec['step_s'] * 1e3:.0f} ms: "
              f"{rec['bare_steps_per_s']:,} steps/s (the fastest timed span of "
              f"{rec['step_span_s'] / rec['step_s']:,.0f} steps; {rec['bare_steps_per_s_measured']})")
        print(f"  the same + a Python flight-software module: {rec['python_fsw_steps_per_s']:,} steps/s")
        print(f"  Monte Carlo Controller, 1 process, {rec['mc_runs']} x {rec['descent_s']:.0f} s descents, "
              f"state retained at 50 Hz: {rec['mc_controller_runs_per_s']:.2f} runs/s, "
              f"{rec.get('mc_controller_bytes_per_run', 0) / 1e3:,.0f} KB archived per run")
        print(f"  the same descents as fresh sims in a loop (no Controller): "
              f"{rec['mc_loop_runs_per_s']:.2f} runs/s")
        if rec.get("bare_instructions_per_step"):
            print(f"  instructions per step (callgrind, {rec['instructions_span_steps']:,} steps): bare "
                  f"{rec['bare_instructions_per_step']:,}, with the Python FSW module "
                  f"{rec['python_fsw_instructions_per_step']:,}")
        else:
            print("  instructions per step: not counted (--instructions counts them, ~7 minutes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
