"""Falsification: search for the descent that breaks a requirement, and boundary search.

    from harness.falsify import falsify, locate_boundary
    out = falsify("harness/data/falsify/m2_gate_fix_late_lrf.toml", "f.sqlite", optimizer="cma", seed=1)
    out.falsified, out.descents_to_violation, out.scenario_file
    b = locate_boundary("harness/data/falsify/m2_gate_fix_boundary.toml", "b.sqlite")
    b.crossing, b.interval

See docs/falsification.md.
"""
from harness.falsify.search import FalsifyOutcome, InProcessExecutor, check_case, falsify
from harness.falsify.spec import FalsifySpec, load_falsify_spec

__all__ = ["falsify", "check_case", "InProcessExecutor", "FalsifyOutcome", "FalsifySpec", "load_falsify_spec", "locate_boundary"]


def __getattr__(name):
    if name == "locate_boundary":
        from harness.falsify.boundary import locate_boundary

        return locate_boundary
    raise AttributeError(name)
