/*
 * Tight syscall timing loops that Python cannot run honestly.
 *
 * A Python loop adds tens of nanoseconds of interpreter dispatch per call, which is as much as
 * the syscall being measured. Here the loop is C, the GIL is released around it and the clock is
 * read once before and once after, so the figure is the cost of the call itself (plus one
 * predictable branch per iteration).
 *
 * Built against the limited API (abi3) so that one .so loads in both the development
 * interpreter (pyenv 3.11.7) and the sandbox's Debian /usr/bin/python3 (3.11.2).
 */
#define Py_LIMITED_API 0x030B0000
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

typedef enum {
    CALL_GETPPID,
    CALL_READ,
    CALL_WRITE,
    CALL_CLOCK_GETTIME,
    CALL_CLOCK_GETTIME_VDSO,
} call_kind;

static const struct {
    const char *name;
    call_kind kind;
    int needs_fd;
} CALL_TABLE[] = {
    {"getppid", CALL_GETPPID, 0},
    {"read", CALL_READ, 1},
    {"write", CALL_WRITE, 1},
    /* syscall(SYS_clock_gettime) enters the kernel even where libc would use the vDSO. */
    {"clock_gettime", CALL_CLOCK_GETTIME, 0},
    /* libc's clock_gettime: the vDSO reads the clock in user space when the clocksource allows. */
    {"clock_gettime_vdso", CALL_CLOCK_GETTIME_VDSO, 0},
};

#define CALL_COUNT ((int)(sizeof(CALL_TABLE) / sizeof(CALL_TABLE[0])))

/* An empty asm with a memory clobber: the compiler may not merge, hoist or drop the calls
 * around it, whatever it believes about their results. */
#define COMPILER_BARRIER() __asm__ __volatile__("" ::: "memory")

static int64_t
monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* One loop per call kind, so the loop body holds nothing but the call, its check and the sink.
 * Returns 0 and the elapsed time, or -1 with the errno and iteration of the first failure. */
static int
timed_loop(call_kind kind, long long iterations, int fd, int64_t *elapsed_ns, int *failed_errno,
           long long *failed_at)
{
    char buf[1] = {'x'};
    struct timespec ts;
    volatile long sink; /* every result is stored, so none of them is dead */
    long result = 0;
    long long i = 0;
    int64_t start_ns = monotonic_ns();

    switch (kind) {
    case CALL_GETPPID:
        for (i = 0; i < iterations; i++) {
            result = syscall(SYS_getppid);
            if (result < 0) goto failed;
            sink = result;
            COMPILER_BARRIER();
        }
        break;
    case CALL_READ:
        for (i = 0; i < iterations; i++) {
            result = syscall(SYS_read, fd, buf, 1);
            if (result < 0) goto failed;
            sink = result;
            COMPILER_BARRIER();
        }
        break;
    case CALL_WRITE:
        for (i = 0; i < iterations; i++) {
            result = syscall(SYS_write, fd, buf, 1);
            if (result < 0) goto failed;
            sink = result;
            COMPILER_BARRIER();
        }
        break;
    case CALL_CLOCK_GETTIME:
        for (i = 0; i < iterations; i++) {
            result = syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &ts);
            if (result < 0) goto failed;
            sink = ts.tv_nsec;
            COMPILER_BARRIER();
        }
        break;
    case CALL_CLOCK_GETTIME_VDSO:
        for (i = 0; i < iterations; i++) {
            result = clock_gettime(CLOCK_MONOTONIC, &ts);
            if (result < 0) goto failed;
            sink = ts.tv_nsec;
            COMPILER_BARRIER();
        }
        break;
    }
    *elapsed_ns = monotonic_ns() - start_ns;
    (void)sink;
    return 0;

failed:
    *failed_errno = errno;
    *failed_at = i;
    return -1;
}

static PyObject *
raise_call_failed(const char *name, int err, long long failed_at)
{
    /* OSError(errno, strerror, filename) picks the errno's subclass (e.g. PermissionError for
     * EPERM) as raising from errno would; the "filename" slot says which call failed and where. */
    PyObject *exc = PyObject_CallFunction(PyExc_OSError, "isN", err, strerror(err),
                                          PyUnicode_FromFormat("%s, iteration %lld", name,
                                                               failed_at));
    if (exc == NULL) return NULL;
    PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
    Py_DECREF(exc);
    return NULL;
}

static PyObject *
loop_ns(PyObject *module, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"call", "iterations", "fd", NULL};
    const char *name;
    long long iterations;
    int fd = -1;
    (void)module;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "sL|i:loop_ns", keywords, &name, &iterations,
                                     &fd)) {
        return NULL;
    }
    int index = -1;
    for (int i = 0; i < CALL_COUNT; i++) {
        if (strcmp(name, CALL_TABLE[i].name) == 0) {
            index = i;
            break;
        }
    }
    if (index < 0) {
        return PyErr_Format(PyExc_ValueError,
                            "unknown call '%s': expected one of getppid, read, write, "
                            "clock_gettime, clock_gettime_vdso",
                            name);
    }
    if (iterations < 1) {
        return PyErr_Format(PyExc_ValueError, "iterations must be at least 1, got %lld",
                            iterations);
    }
    if (CALL_TABLE[index].needs_fd && fd < 0) {
        return PyErr_Format(PyExc_ValueError, "%s needs an open fd, got fd=%d", name, fd);
    }

    int64_t elapsed_ns = 0;
    int failed_errno = 0;
    long long failed_at = 0;
    int status;
    Py_BEGIN_ALLOW_THREADS
    status = timed_loop(CALL_TABLE[index].kind, iterations, fd, &elapsed_ns, &failed_errno,
                        &failed_at);
    Py_END_ALLOW_THREADS
    if (status < 0) {
        return raise_call_failed(name, failed_errno, failed_at);
    }
    return PyLong_FromLongLong(elapsed_ns);
}

static PyMethodDef native_methods[] = {
    {"loop_ns", (PyCFunction)(void (*)(void))loop_ns, METH_VARARGS | METH_KEYWORDS,
     "loop_ns(call, iterations, fd=-1) -> int\n--\n\n"
     "Run `iterations` calls of `call` in a C loop with the GIL released and return the total\n"
     "elapsed CLOCK_MONOTONIC nanoseconds. `call` is one of CALLS; read and write need `fd`.\n"
     "Raises OSError on the first failing call."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef native_module = {
    PyModuleDef_HEAD_INIT,
    "_native",
    "Tight syscall timing loops (see sysops.native).",
    -1,
    native_methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC
PyInit__native(void)
{
    PyObject *module = PyModule_Create(&native_module);
    if (module == NULL) return NULL;
    PyObject *calls = PyTuple_New(CALL_COUNT);
    if (calls == NULL) goto error;
    for (int i = 0; i < CALL_COUNT; i++) {
        PyObject *item = PyUnicode_FromString(CALL_TABLE[i].name);
        if (item == NULL) {
            Py_DECREF(calls);
            goto error;
        }
        PyTuple_SetItem(calls, i, item); /* steals the reference */
    }
    if (PyModule_AddObjectRef(module, "CALLS", calls) < 0) {
        Py_DECREF(calls);
        goto error;
    }
    Py_DECREF(calls);
    return module;

error:
    Py_DECREF(module);
    return NULL;
}
