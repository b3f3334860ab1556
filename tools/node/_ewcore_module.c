/* Makes the portable core loadable as a Python extension module file; the functions are
 * called through ctypes (tools/core.py), so the module itself exports nothing. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static struct PyModuleDef ewcore_module = {PyModuleDef_HEAD_INIT, "_ewcore",
                                           "earwitness portable core (use tools.core)", -1, NULL,
                                           NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__ewcore(void) { return PyModule_Create(&ewcore_module); }
