"""Compiling the models' kernels with numba, one way for all of them."""
from __future__ import annotations


def usable_numba():
    """The ``numba`` module when it is installed and compiling (``NUMBA_DISABLE_JIT`` unset), else
    None: then every model's kernel runs as the plain-Python function it is written as."""
    try:
        import numba
    except ImportError:
        return None
    return None if numba.config.DISABLE_JIT else numba


def njit_cached(numba, sig, fn):
    """``fn`` compiled by ``numba`` for the one signature ``sig``: nogil, no fastmath (IEEE
    arithmetic in the written order, as CPython does it: the same bits), its machine code cached
    on disk beside ``fn``'s module, or for this process only when there is nowhere writable to
    cache it."""
    try:
        return numba.njit([sig], cache=True, nogil=True)(fn)
    except RuntimeError:  # nowhere writable to cache: compile for this process only
        return numba.njit([sig], nogil=True)(fn)


def compile_kernel(fn, signature, inlined=()):
    """``(kernel, compiled)`` for a model's kernel ``fn``: compiled by numba (``njit_cached``) for
    the one signature ``signature(numba)`` returns, with the plain-Python helpers ``inlined``
    compiled into it (``register_jitable``: they stay Python functions), or ``(fn, False)`` when
    numba is not installed or ``NUMBA_DISABLE_JIT=1``. Each model module keeps what this returns
    (once per process; numba's disk cache keeps the machine code across processes)."""
    numba = usable_numba()
    if numba is None:
        return fn, False
    from numba.extending import register_jitable

    for helper in inlined:
        register_jitable(helper)
    return njit_cached(numba, signature(numba), fn), True
