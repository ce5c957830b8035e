#!/usr/bin/env python3
"""Mutation testing of the reference flight code (firmware_stub/fsw_*.c), on demand (not in CI).

Mutants come from universalmutator (a maintained, regexp-based mutation tool; PyPI
``universalmutator``) with its C rules - flipped signs and operators, swapped comparisons,
constants 0/1/-1/+-1, ``&&``/``||`` swaps, negated and forced conditions, deleted statements -
plus ``tools/mutate_fsw.rules`` (floating-point constants off by half either way).

For a seeded random sample of them, each mutant is

1. compiled alone with the flight-code flags: a compile error makes it *invalid* (not counted);
   an object file byte-identical to the original's makes it *equivalent* by trivial compiler
   equivalence (the optimiser proved it changes nothing);
2. otherwise put into a private copy of the repository and the flight-code tests are run,
   fastest stage first, stopping at the first failure (-x): a failure, crash or timeout
   *kills* it; a mutant that passes every stage *survives*.

Two workers run in parallel (``--jobs``). Results go to ``<out>/mutation.json`` and
``<out>/mutation.md`` (survivors with their diff). Example::

    python tools/mutate_fsw.py --sample 150 --seed 1 --jobs 2 --out artifacts/mutation

The score is killed / (killed + survived); survivors judged equivalent by hand are listed with
the reason in docs/mutation.md (``--equivalent FILE`` reads ``id: reason`` lines and reports
the score over non-equivalent mutants).
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import difflib
import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "firmware_stub"
RULES = Path(__file__).with_suffix(".rules")
MUTATE = Path(sys.executable).with_name("mutate")

# Test stages, fastest first; each is one pytest invocation with -x. The first two run by
# default (closed-form unit tests and C-level tests, then the golden runs of every library
# scenario); --full adds the third (closed loops, historical cases, faults, link errors).
STAGES: list[list[str]] = [
    ["tests/test_unit_nav.py", "tests/test_unit_guidance.py", "tests/test_unit_attitude.py",
     "tests/test_unit_app.py", "tests/test_unit_cobs.py", "tests/test_c_guidance.py", "tests/test_c_codec.py",
     "tests/test_c_flightcode.py", "tests/test_c_monitors.py", "tests/test_protocol.py",
     "-k", "not closed_loop and not build and not pulse_mode and not thrust_scale and not nominal_descent "
           "and not declared_failed and not trusted_as_flown and not false_alarm"],
    ["tests/test_golden.py"],
    ["tests/test_c_flightcode.py", "tests/test_c_monitors.py", "tests/test_historical.py",
     "tests/test_faults.py", "tests/test_link_errors.py", "tests/test_closed_loop.py",
     "-k", "closed_loop or pulse_mode or thrust_scale or nominal_descent or declared_failed or "
           "trusted_as_flown or false_alarm or not test_c_"],
]
COPY_IGNORE = shutil.ignore_patterns(".git", ".fsil-cache", "artifacts", "demo-output", "fsil-runs", "__pycache__",
                                     "*.npz.tmp", ".venv", "mutation-report")


@dataclass
class Mutant:
    id: str
    file: str
    line: int
    before: str
    after: str
    text: str = field(repr=False, default="")
    status: str = ""          # killed | survived | invalid | equivalent-tce
    stage: int | None = None  # stage that killed it
    detail: str = ""
    seconds: float = 0.0


def _code_only(src: str) -> list[str]:
    """Lines of C source with comments blanked (line structure kept)."""
    out = re.sub(r"/\*.*?\*/", lambda m: re.sub(r"[^\n]", " ", m.group(0)), src, flags=re.S)
    return [re.sub(r"//.*", "", ln).rstrip() for ln in out.split("\n")]


def generate(files: list[Path], work: Path) -> list[Mutant]:
    """Every universalmutator mutant of ``files`` that changes code (not only a comment)."""
    out: list[Mutant] = []
    for f in files:
        d = work / f.stem
        d.mkdir(parents=True, exist_ok=True)
        subprocess.run([str(MUTATE), str(f), "c", str(RULES), "--noCheck", "--mutantDir", str(d)],
                       check=True, capture_output=True, text=True)
        orig = f.read_text()
        orig_lines = orig.split("\n")
        orig_code = _code_only(orig)
        for p in sorted(d.glob(f"{f.stem}.mutant.*.c"), key=lambda p: int(p.name.split(".")[-2])):
            text = p.read_text()
            new_lines = text.split("\n")
            sm = difflib.SequenceMatcher(None, orig_lines, new_lines, autojunk=False)
            ops = [op for op in sm.get_opcodes() if op[0] != "equal"]
            if not ops:
                continue
            tag, i1, i2, j1, j2 = ops[0]
            new_code = _code_only(text)
            if orig_code[i1:i2] == new_code[j1:j2] and len(ops) == 1:
                continue   # comment-only change
            before = "\n".join(orig_lines[i1:i2]).strip()
            after = "\n".join(new_lines[j1:j2]).strip()
            if re.match(r"\s*#", before):
                continue   # preprocessor lines (include guards, includes)
            out.append(Mutant(f"{f.stem}:{p.name.split('.')[-2]}", f.name, i1 + 1, before, after, text))
    return out


def _cc() -> list[str]:
    sys.path.insert(0, str(ROOT))
    from harness.targets.loopback import loopback_compiler   # the compiler the loopback build uses
    return loopback_compiler()


def _flags() -> list[str]:
    sys.path.insert(0, str(ROOT))
    from harness.targets import FLIGHT_CFLAGS
    return list(FLIGHT_CFLAGS) + ["-fPIC", "-g0"]


def compile_object(src_dir: Path, name: str, text: str, tmp: Path) -> bytes | None:
    """Object code of ``text`` compiled as ``src_dir/name``; None if it does not compile."""
    cdir = tmp / "cc"
    if cdir.exists():
        shutil.rmtree(cdir)
    shutil.copytree(src_dir, cdir)
    (cdir / name).write_text(text)
    obj = cdir / "out.o"
    r = subprocess.run(_cc() + _flags() + ["-I", str(cdir), "-c", str(cdir / name), "-o", str(obj)],
                       capture_output=True, text=True, cwd=cdir)
    return obj.read_bytes() if r.returncode == 0 else None


def run_stages(copy: Path, timeout_s: float, stages: list[list[str]]) -> tuple[str, int | None, str]:
    env = dict(os.environ, PYTHONPATH=str(copy), FSIL_CACHE_DIR=str(copy / ".fsil-cache"),
               PYTHONDONTWRITEBYTECODE="1")
    for k, args in enumerate(stages):
        cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
               "--timeout", "120", "--fsil-artifacts", str(copy / "artifacts"), *args]
        try:
            r = subprocess.run(cmd, cwd=copy, env=env, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return "killed", k, f"stage {k} timed out after {timeout_s:.0f} s"
        if r.returncode == 5:      # no tests selected: not a kill
            continue
        if r.returncode in (-2, -15):
            raise KeyboardInterrupt(f"test stage {k} was interrupted (signal {-r.returncode})")
        if r.returncode != 0:
            failed = [ln for ln in r.stdout.splitlines() if ln.startswith(("FAILED", "ERROR"))]
            return "killed", k, (failed[0] if failed else f"exit {r.returncode}: " + r.stdout[-300:])[:300]
    return "survived", None, ""


def write_report(args, out, files, allm, chosen, set_aside, stages, t0, partial):
    """mutation.json and mutation.md from the mutants tested so far (``partial``: the run goes on)."""
    n_inv = sum(m.status == "invalid" for m in set_aside)
    n_tce = sum(m.status == "equivalent-tce" for m in set_aside)
    equiv = {}
    if args.equivalent:
        for ln in Path(args.equivalent).read_text().splitlines():
            mm = re.match(r"\s*[-*]?\s*`?([\w]+:\d+)`?\s*:\s*(.+)", ln)
            if mm:
                equiv[mm.group(1)] = mm.group(2).strip()
    killed = [m for m in chosen if m.status == "killed"]
    surv = [m for m in chosen if m.status == "survived"]
    surv_eq = [m for m in surv if m.id in equiv]
    surv_ne = [m for m in surv if m.id not in equiv]
    score = len(killed) / max(1, len(killed) + len(surv))
    score_ne = len(killed) / max(1, len(killed) + len(surv_ne))
    summary = {"partial": partial, "seed": args.seed, "stages": len(stages), "files": [f.name for f in files],
               "mutants_generated": len(allm),
               "tested": len(chosen), "killed": len(killed), "survived": len(surv),
               "survived_equivalent_by_hand": len(surv_eq), "set_aside_invalid": n_inv,
               "set_aside_equivalent_tce": n_tce, "score": round(score, 4),
               "score_non_equivalent": round(score_ne, 4), "minutes": round((time.time() - t0) / 60, 1),
               "kills_per_stage": {k: sum(m.stage == k for m in killed) for k in range(len(stages))}}
    (out / "mutation.json").write_text(json.dumps(
        {"summary": summary, "mutants": [{k: v for k, v in asdict(m).items() if k != "text"}
                                         for m in chosen + set_aside]}, indent=1))
    md = ["# Mutation run of the flight code", "", "```", json.dumps(summary, indent=1), "```", "",
          "## Survivors", ""]
    for m in surv:
        md.append(f"- `{m.id}` {m.file}:{m.line}: `{m.before}` -> `{m.after}`"
                  + (f" — equivalent: {equiv[m.id]}" if m.id in equiv else " — **not judged equivalent**"))
    (out / "mutation.md").write_text("\n".join(md) + "\n")
    return summary


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", nargs="*", help="flight-code files (default: firmware_stub/fsw_*.c)")
    ap.add_argument("--sample", type=int, default=150, help="mutants to test (after invalid/TCE ones are set aside)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=900.0, help="s per test stage")
    ap.add_argument("--out", default="artifacts/mutation")
    ap.add_argument("--equivalent", help="file of 'mutant-id: reason' lines judged equivalent by hand")
    ap.add_argument("--ids", nargs="*", help="test only these mutant ids (e.g. fsw_nav:123)")
    ap.add_argument("--full", action="store_true", help="also run the third stage (closed loops, historical, faults)")
    args = ap.parse_args(argv)
    if not MUTATE.exists():
        print(f"mutate_fsw: universalmutator is not installed ({MUTATE} missing): pip install universalmutator",
              file=sys.stderr)
        return 2
    files = [Path(f).resolve() for f in args.files] if args.files else sorted(SRC.glob("fsw_*.c"))
    if args.ids:   # only the files those mutants come from (ids are stable: same source, same rules)
        files = [f for f in files if f.stem in {i.split(":")[0] for i in args.ids}]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="fsil-mutate-") as tmpd:
        tmp = Path(tmpd)
        allm = generate(files, tmp / "gen")
        per_file = {f.name: sum(m.file == f.name for m in allm) for f in files}
        print(f"{len(allm)} code mutants from {len(files)} files: {per_file}", flush=True)
        rng = random.Random(args.seed)
        order = allm[:]
        rng.shuffle(order)
        if args.ids:
            order = [m for m in allm if m.id in set(args.ids)]
        originals = {f.name: compile_object(SRC, f.name, f.read_text(), tmp) for f in files}
        chosen: list[Mutant] = []
        set_aside: list[Mutant] = []
        for m in order:
            if len(chosen) >= args.sample:
                break
            obj = compile_object(SRC, m.file, m.text, tmp)
            if obj is None:
                m.status = "invalid"
                set_aside.append(m)
            elif obj == originals[m.file]:
                m.status = "equivalent-tce"
                set_aside.append(m)
            else:
                chosen.append(m)
        n_inv = sum(m.status == "invalid" for m in set_aside)
        n_tce = sum(m.status == "equivalent-tce" for m in set_aside)
        print(f"sample: {len(chosen)} mutants to test (seed {args.seed}); set aside on the way: {n_inv} not "
              f"compiling, {n_tce} compiling to identical object code", flush=True)

        copies = []
        for k in range(args.jobs):
            c = tmp / f"repo{k}"
            shutil.copytree(ROOT, c, ignore=COPY_IGNORE)
            copies.append(c)
        free = list(copies)
        stages = STAGES if args.full else STAGES[:2]

        def work(m: Mutant) -> Mutant:
            copy = free.pop()
            try:
                t = time.time()
                (copy / "firmware_stub" / m.file).write_text(m.text)
                m.status, m.stage, m.detail = run_stages(copy, args.timeout, stages)
                m.seconds = round(time.time() - t, 1)
            finally:
                (copy / "firmware_stub" / m.file).write_text((SRC / m.file).read_text())
                free.append(copy)
            return m

        done = 0
        with cf.ThreadPoolExecutor(args.jobs) as ex:
            for fut in cf.as_completed([ex.submit(work, m) for m in chosen]):
                m = fut.result()
                done += 1
                print(f"[{done}/{len(chosen)}] {m.id} line {m.line}: {m.status}"
                      f"{' (stage %d)' % m.stage if m.stage is not None else ''} {m.seconds:.0f} s"
                      f"  {m.before!r} -> {m.after!r}", flush=True)
                write_report(args, out, files, allm, [c for c in chosen if c.status], set_aside, stages, t0,
                             partial=done < len(chosen))

    summary = write_report(args, out, files, allm, chosen, set_aside, stages, t0, partial=False)
    print(json.dumps(summary, indent=1))
    print(f"report: {out / 'mutation.md'}, {out / 'mutation.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
