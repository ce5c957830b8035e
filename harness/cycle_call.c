/*
 * cycle_call.c - the compiled plant cycle (harness/cycle.py) called from Python in one cheap call.
 *
 * Harness code, not flight code: a CPython extension module, _fsil_cycle_call, built and cached
 * by harness/cycle_call.py. It calls the numba cfunc of the compiled cycle (fsil_cycle_fn of
 * harness/targets/loopback_link.h, the same one the loopback rig's C link calls) with the
 * block, the history and its row count bound once (an fsil_then_t), where numba's dispatcher spends
 * ~0.8-2.5 us a call typing ten arguments; this call ~0.04 us.
 *
 * bind(address, block, history) -> call: address is the cfunc's, block and history the Cycle's
 * float64 arrays (C-contiguous, 1 and 2 dimensions; held, so they stay alive and in place while
 * call exists). call(row, act, dt_s, n) runs fn(block, history, rows, row, throttle, engine_on,
 * tx, ty, tz, dt_s, n) for act = (throttle, engine_on, (tx, ty, tz)) and returns what it returns
 * (the substeps taken, 0..n), or -2 without calling it when an argument is not of the plain type:
 * throttle, tx, ty, tz and dt_s exactly float, engine_on exactly bool, act and the torque tuples
 * (act may be a NamedTuple), row and n ints, row >= 0 and n >= 0. Those types convert to the
 * cfunc's with the same bits as numba's dispatcher converts them (a float's double, the bool's
 * truth); the caller hands anything else to the dispatcher. The GIL is held: the call is shorter
 * than a release and retake of it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "loopback_link.h"

#define BOUND_NAME "_fsil_cycle_call.bound"

/* What call is bound to: the cycle and the buffers its pointers point into. */
typedef struct {
    fsil_then_t then;
    Py_buffer block;
    Py_buffer history;
} bound_t;

static void bound_free(PyObject *capsule)
{
    bound_t *b = PyCapsule_GetPointer(capsule, BOUND_NAME);
    if (b != NULL) {
        PyBuffer_Release(&b->block);
        PyBuffer_Release(&b->history);
        PyMem_Free(b);
    }
}

/* an exact float's value into *out; 0 when v is of another type */
static int plain_float(PyObject *v, double *out)
{
    if (!PyFloat_CheckExact(v))
        return 0;
    *out = PyFloat_AS_DOUBLE(v);
    return 1;
}

/* an int in [0, INT64_MAX] into *out; 0 otherwise (no Python error left set) */
static int plain_count(PyObject *v, int64_t *out)
{
    long long x;
    if (!PyLong_CheckExact(v))
        return 0;
    x = PyLong_AsLongLong(v);
    if (x == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    *out = (int64_t)x;
    return x >= 0;
}

static PyObject *cycle_call(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    bound_t *b = PyCapsule_GetPointer(self, BOUND_NAME);
    PyObject *act, *torque, *engine;
    double throttle, tx, ty, tz, dt_s;
    int64_t row, n;

    if (b == NULL)
        return NULL;
    if (nargs != 4) {
        PyErr_Format(PyExc_TypeError, "call(row, act, dt_s, n) takes 4 arguments, not %zd", nargs);
        return NULL;
    }
    act = args[1];
    if (!plain_count(args[0], &row) || !plain_count(args[3], &n) || !plain_float(args[2], &dt_s) ||
        !PyTuple_Check(act) || PyTuple_GET_SIZE(act) != 3)
        return PyLong_FromLong(-2);
    engine = PyTuple_GET_ITEM(act, 1);
    torque = PyTuple_GET_ITEM(act, 2);
    if (!plain_float(PyTuple_GET_ITEM(act, 0), &throttle) || !PyBool_Check(engine) ||
        !PyTuple_Check(torque) || PyTuple_GET_SIZE(torque) != 3 || !plain_float(PyTuple_GET_ITEM(torque, 0), &tx) ||
        !plain_float(PyTuple_GET_ITEM(torque, 1), &ty) || !plain_float(PyTuple_GET_ITEM(torque, 2), &tz))
        return PyLong_FromLong(-2);
    return PyLong_FromLongLong(b->then.fn(b->then.block, b->then.history, b->then.rows, row, throttle,
                                          (uint8_t)(engine == Py_True), tx, ty, tz, dt_s, n));
}

static PyMethodDef call_def = {
    "call", (PyCFunction)(void (*)(void))cycle_call, METH_FASTCALL,
    "call(row, act, dt_s, n): the compiled cycle for act = (throttle, engine_on, (tx, ty, tz)); "
    "the substeps it took, or -2 when an argument is not of the plain type (see cycle_call.c)",
};

/* a writable, C-contiguous float64 buffer of ndim dimensions into view; 0 with an error set otherwise */
static int float64_view(PyObject *obj, Py_buffer *view, int ndim, const char *what)
{
    if (PyObject_GetBuffer(obj, view, PyBUF_WRITABLE | PyBUF_FORMAT | PyBUF_C_CONTIGUOUS) != 0)
        return 0;
    if (view->ndim != ndim || view->itemsize != 8 || view->format == NULL || strcmp(view->format, "d") != 0) {
        PyErr_Format(PyExc_ValueError, "%s: a %d-dimensional float64 array is needed", what, ndim);
        PyBuffer_Release(view);
        return 0;
    }
    return 1;
}

static PyObject *bind(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    bound_t *b;
    PyObject *capsule, *fn;
    void *address;

    (void)module;
    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError, "bind(address, block, history) takes 3 arguments, not %zd", nargs);
        return NULL;
    }
    address = PyLong_AsVoidPtr(args[0]);
    if (address == NULL) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "bind: the cycle's address is 0");
        return NULL;
    }
    b = PyMem_Calloc(1, sizeof *b);
    if (b == NULL)
        return PyErr_NoMemory();
    if (!float64_view(args[1], &b->block, 1, "block")) {
        PyMem_Free(b);
        return NULL;
    }
    if (!float64_view(args[2], &b->history, 2, "history")) {
        PyBuffer_Release(&b->block);
        PyMem_Free(b);
        return NULL;
    }
    b->then.fn = (fsil_cycle_fn)address;
    b->then.block = b->block.buf;
    b->then.history = b->history.buf;
    b->then.rows = (int64_t)b->history.shape[0];
    b->then.done = -1;
    capsule = PyCapsule_New(b, BOUND_NAME, bound_free);
    if (capsule == NULL) {
        PyBuffer_Release(&b->block);
        PyBuffer_Release(&b->history);
        PyMem_Free(b);
        return NULL;
    }
    fn = PyCFunction_New(&call_def, capsule);  /* call's self: the capsule (which it keeps) */
    Py_DECREF(capsule);
    return fn;
}

static PyMethodDef methods[] = {
    {"bind", (PyCFunction)(void (*)(void))bind, METH_FASTCALL,
     "bind(address, block, history): call(row, act, dt_s, n) of the compiled cycle at address on these arrays"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_fsil_cycle_call", "The compiled plant cycle in one cheap call (harness/cycle_call.c).",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__fsil_cycle_call(void)
{
    return PyModule_Create(&module_def);
}
