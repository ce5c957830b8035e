"""Fixtures shared by the test files."""
import pytest


@pytest.fixture(scope="session")
def fc():
    """The C flight code built into its cffi module: ``(ffi, lib)``."""
    from harness.targets import load_flight_code

    return load_flight_code()


@pytest.fixture(scope="session")
def ffi_lib(fc):
    """Alias of ``fc`` for the closed-form unit tests (test_unit_*.py)."""
    return fc
