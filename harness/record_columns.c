/* The per-cycle record of harness/runner.py turned into float64 columns, in one C pass.
 *
 * fsil_record_columns(rows, out, n, width): rows is a list of n tuples of width values each;
 * value k of row i goes to out[k * n + i] as float() takes it: a float's double, True 1.0,
 * False 0.0, an int correctly rounded (PyLong_AsDouble, what float(int) does). Returns 0; -1
 * (out then undefined, no Python error set) for anything else: not a list of n tuples of width
 * values, a value of another type (a float or int subclass too), an int beyond the double range.
 * The caller converts such a record the general way.
 *
 * Called through ctypes.PyDLL: the GIL is held. Built and cached by harness/record_columns.py.
 */
#include <Python.h>

int fsil_record_columns(PyObject *rows, double *out, Py_ssize_t n, Py_ssize_t width)
{
    if (!PyList_CheckExact(rows) || PyList_GET_SIZE(rows) != n)
        return -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *row = PyList_GET_ITEM(rows, i);
        if (i + 4 < n)  /* the rows were made one a cycle, long ago: fetch ahead */
            __builtin_prefetch(PyList_GET_ITEM(rows, i + 4));
        if (!PyTuple_CheckExact(row) || PyTuple_GET_SIZE(row) != width)
            return -1;
        for (Py_ssize_t k = 0; k < width; k++) {
            PyObject *v = PyTuple_GET_ITEM(row, k);
            double d;
            if (PyFloat_CheckExact(v)) {
                d = PyFloat_AS_DOUBLE(v);
            } else if (v == Py_True) {
                d = 1.0;
            } else if (v == Py_False) {
                d = 0.0;
            } else if (PyLong_CheckExact(v)) {
                d = PyLong_AsDouble(v);
                if (d == -1.0 && PyErr_Occurred()) {  /* beyond the double range */
                    PyErr_Clear();
                    return -1;
                }
            } else {
                return -1;
            }
            out[k * n + i] = d;
        }
    }
    return 0;
}

/* fsil_float_list(values, out, n): a list of n floats (exactly float: no subclass) into out[0..n).
 * Returns 0; -1 (out then undefined) for anything else. */
int fsil_float_list(PyObject *values, double *out, Py_ssize_t n)
{
    if (!PyList_CheckExact(values) || PyList_GET_SIZE(values) != n)
        return -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *v = PyList_GET_ITEM(values, i);
        if (i + 8 < n)
            __builtin_prefetch(PyList_GET_ITEM(values, i + 8));
        if (!PyFloat_CheckExact(v))
            return -1;
        out[i] = PyFloat_AS_DOUBLE(v);
    }
    return 0;
}
