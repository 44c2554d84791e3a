/*
 * The wasm-boundary experiment's C loop: a plain function call, made the way the WebAssembly
 * module makes its wasm→wasm and wasm→host calls (n calls in a loop, each passing an int and
 * getting one back), so the three sit on one scale.
 *
 * The callee is reached through a volatile function pointer, so the compiler can neither
 * inline it nor fold the loop away: each iteration is a real indirect call and return.
 * Limited API (abi3), as every module in sysops/native.
 */
#define Py_LIMITED_API 0x030B0000
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <time.h>

static __attribute__((noinline)) int32_t
add_one(int32_t value)
{
    return value + 1;
}

static int32_t (*volatile callee)(int32_t) = add_one;

static int64_t
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static PyObject *
call_loop_ns(PyObject *module, PyObject *args)
{
    long long iterations;
    (void)module;
    if (!PyArg_ParseTuple(args, "L:call_loop_ns", &iterations)) return NULL;
    if (iterations < 1) {
        return PyErr_Format(PyExc_ValueError, "iterations must be at least 1, got %lld",
                            iterations);
    }
    int32_t acc = 0;
    int64_t elapsed_ns;
    Py_BEGIN_ALLOW_THREADS
    int64_t start_ns = now_ns();
    for (long long i = 0; i < iterations; i++) {
        acc = callee(acc);
    }
    elapsed_ns = now_ns() - start_ns;
    Py_END_ALLOW_THREADS
    /* The caller checks the result: it proves every call was made. */
    return Py_BuildValue("(Li)", (long long)elapsed_ns, (int)acc);
}

static PyMethodDef boundary_methods[] = {
    {"call_loop_ns", call_loop_ns, METH_VARARGS,
     "call_loop_ns(iterations) -> (elapsed_ns, result)\n--\n\n"
     "Call an int -> int function (x + 1) through a pointer `iterations` times in a C loop,\n"
     "the GIL released; result is the last value (iterations, modulo 2**32)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef boundary_module = {
    PyModuleDef_HEAD_INIT, "_boundary", "A C function-call loop (see wasm_boundary).", -1,
    boundary_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__boundary(void)
{
    return PyModule_Create(&boundary_module);
}
