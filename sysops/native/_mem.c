/*
 * Memory maps touched from C: the mmap experiment's first-touch loop, which a Python loop would
 * dominate (tens of ns of interpreter per page against a fault of a few hundred ns).
 *
 * A map is known to Python by a small handle (an index into a table here), never by its address,
 * so that no Python value can make this module touch memory it did not map. The touch loop runs
 * with the GIL released, between two readings of the clock and of the thread's fault counters.
 *
 * Built against the limited API (abi3), like _native.c.
 */
#define Py_LIMITED_API 0x030B0000
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "probe_timing.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define MAX_MAPS 8
#define TOUCH_BYTE 0x5A /* what a write leaves in each page: not the file's fill byte */

static struct {
    char *addr;
    size_t length;
} maps[MAX_MAPS];

/* OSError (the errno's own subclass) with the call's name in the filename slot. */
static PyObject *
raise_errno(const char *what)
{
    return PyErr_SetFromErrnoWithFilename(PyExc_OSError, what);
}

static int
checked_handle(int handle)
{
    if (handle < 0 || handle >= MAX_MAPS || maps[handle].addr == NULL) {
        PyErr_Format(PyExc_ValueError, "no live map with handle %d", handle);
        return -1;
    }
    return 0;
}

static PyObject *
mem_map(PyObject *module, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"length", "shared", "fd", "populate", NULL};
    Py_ssize_t length;
    int shared, fd = -1, populate = 0;
    (void)module;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "np|ip:map", keywords, &length, &shared, &fd,
                                     &populate)) {
        return NULL;
    }
    if (length < 1) return PyErr_Format(PyExc_ValueError, "length must be positive");
    int handle = -1;
    for (int i = 0; i < MAX_MAPS; i++) {
        if (maps[i].addr == NULL) {
            handle = i;
            break;
        }
    }
    if (handle < 0) return PyErr_Format(PyExc_RuntimeError, "more than %d live maps", MAX_MAPS);

    int flags = (shared ? MAP_SHARED : MAP_PRIVATE) | (fd < 0 ? MAP_ANONYMOUS : 0) |
                (populate ? MAP_POPULATE : 0);
    void *addr;
    int64_t start_ns, elapsed_ns;
    Py_BEGIN_ALLOW_THREADS
    start_ns = probe_monotonic_ns();
    addr = mmap(NULL, (size_t)length, PROT_READ | PROT_WRITE, flags, fd, 0);
    elapsed_ns = probe_monotonic_ns() - start_ns;
    Py_END_ALLOW_THREADS
    if (addr == MAP_FAILED) return raise_errno("mmap");
    maps[handle].addr = addr;
    maps[handle].length = (size_t)length;
    return Py_BuildValue("(iL)", handle, (long long)elapsed_ns);
}

typedef int (*map_op)(void *addr, size_t length, int arg);

static int
unmap_op(void *addr, size_t length, int unused)
{
    (void)unused;
    return munmap(addr, length);
}

/* One call over a whole live map, GIL released, timed: madvise, msync or munmap. Returns its ns
 * or -1 with an exception set. */
static long long
timed_map_op(int handle, map_op op, int arg, const char *name)
{
    if (checked_handle(handle) < 0) return -1;
    int status;
    int64_t start_ns, elapsed_ns;
    Py_BEGIN_ALLOW_THREADS
    start_ns = probe_monotonic_ns();
    status = op(maps[handle].addr, maps[handle].length, arg);
    elapsed_ns = probe_monotonic_ns() - start_ns;
    Py_END_ALLOW_THREADS
    if (status != 0) {
        raise_errno(name);
        return -1;
    }
    return (long long)elapsed_ns;
}

static PyObject *
mem_advise(PyObject *module, PyObject *args)
{
    int handle, advice;
    (void)module;
    if (!PyArg_ParseTuple(args, "ii:advise", &handle, &advice)) return NULL;
    long long elapsed_ns = timed_map_op(handle, madvise, advice, "madvise");
    return elapsed_ns < 0 ? NULL : PyLong_FromLongLong(elapsed_ns);
}

typedef enum { PATTERN_SEQUENTIAL, PATTERN_RANDOM, PATTERN_PAGE } pattern_kind;

/* xorshift64*: a seeded, repeatable page order; quality hardly matters, speed and no libc state. */
static uint64_t
next_random(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* One pass over the map. Sequential touches every 8-byte word in address order (every byte of
 * every page, as memset or a copy would); page and random touch one byte per page, in address
 * order or in `order`. Volatile accesses, so each load and store really happens, one at a time. */
static uint64_t
touch_pages(char *base, size_t length, size_t page_bytes, pattern_kind pattern, int write,
            const uint32_t *order)
{
    uint64_t sum = 0;
    size_t pages = (length + page_bytes - 1) / page_bytes;
    if (pattern == PATTERN_SEQUENTIAL) {
        volatile uint64_t *word = (volatile uint64_t *)base;
        size_t words = length / sizeof(uint64_t);
        for (size_t i = 0; i < words; i++) {
            if (write)
                word[i] = 0x5A5A5A5A5A5A5A5AULL;
            else
                sum += word[i];
        }
        /* A length that is not a multiple of 8 (never from the form) still touches its tail. */
        for (size_t i = words * sizeof(uint64_t); i < length; i++) {
            if (write)
                ((volatile char *)base)[i] = TOUCH_BYTE;
            else
                sum += (unsigned char)((volatile char *)base)[i];
        }
        return sum;
    }
    volatile char *bytes = base;
    for (size_t i = 0; i < pages; i++) {
        size_t page = pattern == PATTERN_RANDOM ? order[i] : i;
        if (write)
            bytes[page * page_bytes] = TOUCH_BYTE;
        else
            sum += (unsigned char)bytes[page * page_bytes];
    }
    return sum;
}

static PyObject *
mem_touch(PyObject *module, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"handle", "pattern", "write", "seed", NULL};
    int handle, write;
    const char *pattern_name;
    unsigned long long seed = 1;
    (void)module;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "isp|K:touch", keywords, &handle,
                                     &pattern_name, &write, &seed)) {
        return NULL;
    }
    if (checked_handle(handle) < 0) return NULL;
    pattern_kind pattern;
    if (strcmp(pattern_name, "sequential") == 0)
        pattern = PATTERN_SEQUENTIAL;
    else if (strcmp(pattern_name, "random") == 0)
        pattern = PATTERN_RANDOM;
    else if (strcmp(pattern_name, "page") == 0)
        pattern = PATTERN_PAGE;
    else
        return PyErr_Format(PyExc_ValueError,
                            "unknown pattern '%s': expected sequential, random or page",
                            pattern_name);

    size_t page_bytes = (size_t)sysconf(_SC_PAGESIZE);
    size_t length = maps[handle].length;
    size_t pages = (length + page_bytes - 1) / page_bytes;
    uint32_t *order = NULL;
    if (pattern == PATTERN_RANDOM) {
        /* Built (and its own pages faulted in) before the counters are read. */
        order = malloc(pages * sizeof(uint32_t));
        if (order == NULL) return PyErr_NoMemory();
        uint64_t state = seed ? seed : 1;
        for (size_t i = 0; i < pages; i++) order[i] = (uint32_t)i;
        for (size_t i = pages - 1; i > 0; i--) {
            size_t j = (size_t)(next_random(&state) % (i + 1));
            uint32_t swap = order[i];
            order[i] = order[j];
            order[j] = swap;
        }
    }

    probe_faults before, after;
    int64_t start_ns, elapsed_ns;
    uint64_t sum;
    Py_BEGIN_ALLOW_THREADS
    before = probe_thread_faults();
    start_ns = probe_monotonic_ns();
    sum = touch_pages(maps[handle].addr, length, page_bytes, pattern, write, order);
    COMPILER_BARRIER();
    elapsed_ns = probe_monotonic_ns() - start_ns;
    after = probe_thread_faults();
    Py_END_ALLOW_THREADS
    free(order);
    return Py_BuildValue("{sLslslsnsK}", "elapsed_ns", (long long)elapsed_ns, "minor_faults",
                         after.minor - before.minor, "major_faults", after.major - before.major,
                         "pages", (Py_ssize_t)pages, "checksum", (unsigned long long)sum);
}

static PyObject *
mem_msync(PyObject *module, PyObject *args)
{
    int handle;
    (void)module;
    if (!PyArg_ParseTuple(args, "i:msync", &handle)) return NULL;
    long long elapsed_ns = timed_map_op(handle, msync, MS_SYNC, "msync");
    return elapsed_ns < 0 ? NULL : PyLong_FromLongLong(elapsed_ns);
}

static PyObject *
mem_unmap(PyObject *module, PyObject *args)
{
    int handle;
    (void)module;
    if (!PyArg_ParseTuple(args, "i:unmap", &handle)) return NULL;
    long long elapsed_ns = timed_map_op(handle, unmap_op, 0, "munmap");
    if (elapsed_ns < 0) return NULL;
    maps[handle].addr = NULL;
    maps[handle].length = 0;
    return PyLong_FromLongLong(elapsed_ns);
}

static PyMethodDef mem_methods[] = {
    {"map", (PyCFunction)(void (*)(void))mem_map, METH_VARARGS | METH_KEYWORDS,
     "map(length, shared, fd=-1, populate=False) -> (handle, map_ns)\n--\n\n"
     "mmap PROT_READ|PROT_WRITE, MAP_SHARED or MAP_PRIVATE, anonymous when fd < 0, with\n"
     "MAP_POPULATE when asked. Returns a handle for the other calls and the mmap time."},
    {"advise", mem_advise, METH_VARARGS,
     "advise(handle, advice) -> ns\n--\n\nmadvise over the whole map; its time."},
    {"touch", (PyCFunction)(void (*)(void))mem_touch, METH_VARARGS | METH_KEYWORDS,
     "touch(handle, pattern, write, seed=1) -> dict\n--\n\n"
     "One pass over the map, GIL released: pattern 'sequential' (every 8-byte word), 'page'\n"
     "(one byte per page, in order) or 'random' (one byte per page, seeded random order);\n"
     "a store of 0x5A or a load. Returns elapsed_ns, minor_faults, major_faults (this\n"
     "thread's getrusage around the loop only), pages and a checksum of what was read."},
    {"msync", mem_msync, METH_VARARGS, "msync(handle) -> ns\n--\n\nmsync(MS_SYNC); its time."},
    {"unmap", mem_unmap, METH_VARARGS, "unmap(handle) -> ns\n--\n\nmunmap; its time."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef mem_module = {
    PyModuleDef_HEAD_INIT, "_mem", "Memory maps touched from C (see the mmap experiment).", -1,
    mem_methods,           NULL,   NULL,
    NULL,                  NULL,
};

PyMODINIT_FUNC
PyInit__mem(void)
{
    PyObject *module = PyModule_Create(&mem_module);
    if (module == NULL) return NULL;
    if (PyModule_AddIntConstant(module, "TOUCH_BYTE", TOUCH_BYTE) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
