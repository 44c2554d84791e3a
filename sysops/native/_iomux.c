/*
 * select, poll and epoll timed one call at a time, in C: the cost of one wait call that watches
 * N descriptors of which k are ready.
 *
 * Each cycle writes one byte into each of the k ready pipes, times the wait call alone (two
 * vDSO clock reads around it), checks that it reported exactly k ready descriptors, and reads
 * the k bytes back. Writing and reading every cycle gives level- and edge-triggered epoll the
 * same k fresh events per wakeup (an edge-triggered waiter would otherwise see each byte once).
 *
 * select is refused for any descriptor >= FD_SETSIZE: FD_SET past the end of an fd_set writes
 * past the end of the structure, which is memory corruption, not a slow call.
 *
 * Limited API (abi3), like _native.c, so one .so loads in the sandbox's Python too.
 */
#define Py_LIMITED_API 0x030B0000
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <time.h>
#include <unistd.h>

typedef enum { MECH_SELECT, MECH_POLL, MECH_EPOLL_LT, MECH_EPOLL_ET } mechanism;

static const struct {
    const char *name;
    mechanism kind;
} MECHANISMS[] = {
    {"select", MECH_SELECT},
    {"poll", MECH_POLL},
    {"epoll_lt", MECH_EPOLL_LT},
    {"epoll_et", MECH_EPOLL_ET},
};
#define MECHANISM_COUNT ((int)(sizeof(MECHANISMS) / sizeof(MECHANISMS[0])))

/* Descriptors, calls and ready descriptors are bounded well above what the probe asks for. */
#define WATCHED_MAX 1000000
#define CALLS_MAX 10000000

static int64_t
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* What failed, for the OSError or RuntimeError raised once the GIL is back. */
typedef struct {
    const char *call; /* NULL: no failure */
    int err;          /* errno; 0 for a wrong count */
    long long cycle;
    long reported; /* for a wrong count: what the wait call said */
} failure;

typedef struct {
    mechanism kind;
    int *watched;
    Py_ssize_t n_watched;
    int *ready_read;
    int *ready_write;
    Py_ssize_t n_ready;
    long long calls;
    long long warmup;
    long long *out_ns;
} wait_job;

/* One byte into each ready pipe (to_pipes), or back out of each: -1 with *fail on a failure. */
static int
move_ready_bytes(const wait_job *job, int to_pipes, failure *fail)
{
    char byte = 'x';
    for (Py_ssize_t i = 0; i < job->n_ready; i++) {
        ssize_t moved = to_pipes ? write(job->ready_write[i], &byte, 1)
                                 : read(job->ready_read[i], &byte, 1);
        if (moved != 1) {
            fail->call = to_pipes ? "write" : "read";
            fail->err = moved < 0 ? errno : EIO;
            return -1;
        }
    }
    return 0;
}

/* Runs without the GIL. Returns 0, or -1 with *fail filled in. */
static int
run_waits(const wait_job *job, failure *fail)
{
    fd_set master, working;
    struct pollfd *pfds = NULL;
    struct epoll_event *events = NULL;
    int epfd = -1, max_fd = -1, status = -1;
    int max_events = job->n_watched > 0 ? (int)job->n_watched : 1;

    if (job->kind == MECH_SELECT) {
        FD_ZERO(&master);
        for (Py_ssize_t i = 0; i < job->n_watched; i++) {
            FD_SET(job->watched[i], &master); /* every fd < FD_SETSIZE: checked by the caller */
            if (job->watched[i] > max_fd) max_fd = job->watched[i];
        }
    } else if (job->kind == MECH_POLL) {
        pfds = calloc((size_t)max_events, sizeof(*pfds));
        if (pfds == NULL) {
            fail->call = "calloc";
            fail->err = ENOMEM;
            return -1;
        }
        for (Py_ssize_t i = 0; i < job->n_watched; i++) {
            pfds[i].fd = job->watched[i];
            pfds[i].events = POLLIN;
        }
    } else {
        events = calloc((size_t)max_events, sizeof(*events));
        epfd = epoll_create1(EPOLL_CLOEXEC);
        if (events == NULL || epfd < 0) {
            fail->call = events == NULL ? "calloc" : "epoll_create1";
            fail->err = events == NULL ? ENOMEM : errno;
            goto done;
        }
        uint32_t flags = EPOLLIN | (job->kind == MECH_EPOLL_ET ? EPOLLET : 0);
        for (Py_ssize_t i = 0; i < job->n_watched; i++) {
            struct epoll_event ev = {.events = flags, .data = {.fd = job->watched[i]}};
            if (epoll_ctl(epfd, EPOLL_CTL_ADD, job->watched[i], &ev) < 0) {
                fail->call = "epoll_ctl";
                fail->err = errno;
                goto done;
            }
        }
    }

    for (long long cycle = 0; cycle < job->warmup + job->calls; cycle++) {
        struct timeval zero = {0, 0}; /* select may change it: a fresh one every call */
        long reported = 0;
        int64_t start_ns = 0, end_ns = 0;
        fail->cycle = cycle;
        if (move_ready_bytes(job, 1, fail) < 0) goto done;
        switch (job->kind) {
        case MECH_SELECT:
            /* A select loop must hand the kernel a fresh set every call (it overwrites it): the
             * copy is part of what select costs, so it is inside the timed region. */
            start_ns = now_ns();
            working = master;
            reported = select(max_fd + 1, &working, NULL, NULL, &zero);
            end_ns = now_ns();
            fail->call = "select";
            break;
        case MECH_POLL:
            start_ns = now_ns();
            reported = poll(pfds, (nfds_t)job->n_watched, 0);
            end_ns = now_ns();
            fail->call = "poll";
            break;
        default:
            start_ns = now_ns();
            reported = epoll_wait(epfd, events, max_events, 0);
            end_ns = now_ns();
            fail->call = "epoll_wait";
            break;
        }
        if (reported < 0) {
            fail->err = errno;
            goto done;
        }
        if (reported != job->n_ready) {
            fail->err = 0;
            fail->reported = reported;
            goto done;
        }
        fail->call = NULL;
        if (move_ready_bytes(job, 0, fail) < 0) goto done;
        if (cycle >= job->warmup) job->out_ns[cycle - job->warmup] = end_ns - start_ns;
    }
    status = 0;

done:
    if (epfd >= 0) close(epfd);
    free(pfds);
    free(events);
    return status;
}

/* A sequence of ints as a malloc'd C array (NULL with an exception set). */
static int *
int_array(PyObject *seq, const char *what, Py_ssize_t *count)
{
    Py_ssize_t n = PySequence_Size(seq);
    if (n < 0) return NULL;
    if (n > WATCHED_MAX) {
        PyErr_Format(PyExc_ValueError, "%s: at most %d descriptors", what, WATCHED_MAX);
        return NULL;
    }
    int *out = PyMem_Malloc((size_t)(n > 0 ? n : 1) * sizeof(int));
    if (out == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PySequence_GetItem(seq, i);
        long value = item == NULL ? -1 : PyLong_AsLong(item);
        Py_XDECREF(item);
        if (value == -1 && PyErr_Occurred()) goto failed;
        if (value < 0 || value > INT32_MAX) {
            PyErr_Format(PyExc_ValueError, "%s: %ld is not a descriptor", what, value);
            goto failed;
        }
        out[i] = (int)value;
    }
    *count = n;
    return out;

failed:
    PyMem_Free(out);
    return NULL;
}

static PyObject *
raise_failure(const failure *fail, Py_ssize_t expected)
{
    if (fail->err == 0) {
        return PyErr_Format(PyExc_RuntimeError,
                            "%s reported %ld ready descriptors in cycle %lld, expected %zd",
                            fail->call, fail->reported, fail->cycle, expected);
    }
    PyObject *where = PyUnicode_FromFormat("%s, cycle %lld", fail->call, fail->cycle);
    PyObject *exc = where == NULL ? NULL
                                  : PyObject_CallFunction(PyExc_OSError, "isO", fail->err,
                                                          strerror(fail->err), where);
    Py_XDECREF(where);
    if (exc != NULL) {
        /* OSError(errno, ...) picks the errno's subclass (EMFILE: OSError, EBADF: OSError). */
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
    }
    return NULL;
}

static PyObject *
wait_ns(PyObject *module, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"mechanism", "watched", "ready_read", "ready_write", "calls",
                               "warmup", NULL};
    const char *name;
    PyObject *watched_seq, *read_seq, *write_seq, *result = NULL;
    long long calls, warmup = 0;
    wait_job job = {0};
    failure fail = {0};
    Py_ssize_t n_write = 0;
    int index = -1, status;
    (void)module;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "sOOOL|L:wait_ns", keywords, &name,
                                     &watched_seq, &read_seq, &write_seq, &calls, &warmup)) {
        return NULL;
    }
    for (int i = 0; i < MECHANISM_COUNT; i++) {
        if (strcmp(name, MECHANISMS[i].name) == 0) index = i;
    }
    if (index < 0) {
        return PyErr_Format(PyExc_ValueError,
                            "unknown mechanism '%s': expected select, poll, epoll_lt or epoll_et",
                            name);
    }
    if (calls < 1 || calls > CALLS_MAX || warmup < 0 || warmup > CALLS_MAX) {
        return PyErr_Format(PyExc_ValueError, "calls must be in 1..%d and warmup in 0..%d",
                            CALLS_MAX, CALLS_MAX);
    }
    job.kind = MECHANISMS[index].kind;
    job.calls = calls;
    job.warmup = warmup;
    job.watched = int_array(watched_seq, "watched", &job.n_watched);
    if (job.watched == NULL) goto cleanup;
    job.ready_read = int_array(read_seq, "ready_read", &job.n_ready);
    if (job.ready_read == NULL) goto cleanup;
    job.ready_write = int_array(write_seq, "ready_write", &n_write);
    if (job.ready_write == NULL) goto cleanup;
    if (n_write != job.n_ready || job.n_ready > job.n_watched) {
        PyErr_SetString(PyExc_ValueError,
                        "ready_read and ready_write must pair up, and be no more than watched");
        goto cleanup;
    }
    if (job.kind == MECH_SELECT) {
        for (Py_ssize_t i = 0; i < job.n_watched; i++) {
            if (job.watched[i] >= FD_SETSIZE) {
                PyErr_Format(PyExc_ValueError,
                             "select cannot watch fd %d: an fd_set is a fixed bitmap of "
                             "FD_SETSIZE = %d bits (descriptors 0..%d), and FD_SET on a larger "
                             "descriptor writes past its end: memory corruption, not a slow "
                             "call. poll and epoll have no such limit.",
                             job.watched[i], FD_SETSIZE, FD_SETSIZE - 1);
                goto cleanup;
            }
        }
    }
    job.out_ns = PyMem_Malloc((size_t)calls * sizeof(long long));
    if (job.out_ns == NULL) {
        PyErr_NoMemory();
        goto cleanup;
    }

    Py_BEGIN_ALLOW_THREADS
    status = run_waits(&job, &fail);
    Py_END_ALLOW_THREADS
    if (status < 0) {
        raise_failure(&fail, job.n_ready);
        goto cleanup;
    }
    result = PyList_New((Py_ssize_t)calls);
    for (long long i = 0; result != NULL && i < calls; i++) {
        PyObject *value = PyLong_FromLongLong(job.out_ns[i]);
        if (value == NULL) {
            Py_CLEAR(result);
            break;
        }
        PyList_SetItem(result, (Py_ssize_t)i, value); /* steals the reference */
    }

cleanup:
    PyMem_Free(job.watched);
    PyMem_Free(job.ready_read);
    PyMem_Free(job.ready_write);
    PyMem_Free(job.out_ns);
    return result;
}

static PyObject *
clock_pair_ns(PyObject *module, PyObject *arg)
{
    (void)module;
    long long calls = PyLong_AsLongLong(arg);
    if (calls == -1 && PyErr_Occurred()) return NULL;
    if (calls < 1 || calls > CALLS_MAX) {
        return PyErr_Format(PyExc_ValueError, "calls must be in 1..%d", CALLS_MAX);
    }
    long long *out = PyMem_Malloc((size_t)calls * sizeof(long long));
    if (out == NULL) return PyErr_NoMemory();
    Py_BEGIN_ALLOW_THREADS
    for (long long i = 0; i < calls; i++) {
        int64_t start_ns = now_ns();
        out[i] = now_ns() - start_ns;
    }
    Py_END_ALLOW_THREADS
    PyObject *result = PyList_New((Py_ssize_t)calls);
    for (long long i = 0; result != NULL && i < calls; i++) {
        PyObject *value = PyLong_FromLongLong(out[i]);
        if (value == NULL) {
            Py_CLEAR(result);
            break;
        }
        PyList_SetItem(result, (Py_ssize_t)i, value);
    }
    PyMem_Free(out);
    return result;
}

static PyMethodDef iomux_methods[] = {
    {"wait_ns", (PyCFunction)(void (*)(void))wait_ns, METH_VARARGS | METH_KEYWORDS,
     "wait_ns(mechanism, watched, ready_read, ready_write, calls, warmup=0) -> list[int]\n--\n\n"
     "Per call, the ns of one wait call (select, poll, epoll_lt, epoll_et; timeout 0) watching\n"
     "`watched` for input, after a byte was written to each of `ready_write` (the write ends of\n"
     "the pipes whose read ends are `ready_read`, all among `watched`); the bytes are read back\n"
     "after each call. Raises ValueError for select with a descriptor >= FD_SETSIZE, OSError\n"
     "when a call fails and RuntimeError when a wait reports other than len(ready_read)."},
    {"clock_pair_ns", clock_pair_ns, METH_O,
     "clock_pair_ns(calls) -> list[int]\n--\n\n"
     "Per pair, the ns between two back-to-back clock reads: what wait_ns's timing adds."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef iomux_module = {
    PyModuleDef_HEAD_INIT, "_iomux", "select/poll/epoll timed per call (see the io_multiplexing "
    "probe).", -1, iomux_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__iomux(void)
{
    PyObject *module = PyModule_Create(&iomux_module);
    if (module == NULL) return NULL;
    if (PyModule_AddIntConstant(module, "FD_SETSIZE", FD_SETSIZE) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
