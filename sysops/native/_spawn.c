/*
 * Process creation timed from C: fork, vfork and posix_spawn cycles, and the parent's memory.
 *
 * vfork cannot be done from Python at all (the child borrows the parent's stack, and the
 * interpreter would run on it), and a Python loop around fork adds its own allocations to the
 * parent being copied. Here each cycle is C with the GIL released, and every moment is read
 * from CLOCK_MONOTONIC, which is one clock for parent and child:
 *
 *   returned    the spawn call returned in the parent (fork/vfork/posix_spawn);
 *   child start the child's first instruction after fork/vfork returned in it, written to a
 *               MAP_SHARED page (posix_spawn's child runs libc code only: not observable);
 *   exec done   the parent read EOF on a pipe whose write end is O_CLOEXEC: the kernel closes
 *               it inside a successful execve, past the point of no return;
 *   reaped      waitpid returned the child's exit status.
 *
 * Each is in ns after the cycle's start; -1 where the method has no such moment.
 *
 * Built against the limited API (abi3), like _native.c.
 */
#define Py_LIMITED_API 0x030B0000
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define EXEC_FAILED_STATUS 127
#define MAX_CYCLES 100000

typedef enum { FORK_EXIT, FORK_EXECVE, VFORK_EXECVE, POSIX_SPAWN } method_kind;

static const struct {
    const char *name;
    method_kind kind;
} METHOD_TABLE[] = {
    {"fork_exit", FORK_EXIT},
    {"fork_execve", FORK_EXECVE},
    {"vfork_execve", VFORK_EXECVE},
    {"posix_spawn", POSIX_SPAWN},
};

#define METHOD_COUNT ((int)(sizeof(METHOD_TABLE) / sizeof(METHOD_TABLE[0])))

typedef struct {
    int64_t returned_ns, child_start_ns, exec_ns, reaped_ns;
} cycle_times;

/* One page shared with every child, where a child stamps its first moment. */
static volatile int64_t *shared_stamp;

extern char **environ;

static int64_t
monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The vfork child may only stamp, exec or _exit: it runs on the parent's stack. Kept in its own
 * function with nothing live across the vfork, so no local can be clobbered. */
static pid_t __attribute__((noinline))
vfork_exec(const char *path, char *const argv[], char *const envp[])
{
    pid_t pid = vfork();
    if (pid == 0) {
        *shared_stamp = monotonic_ns();
        execve(path, argv, envp);
        _exit(EXEC_FAILED_STATUS);
    }
    return pid;
}

/* One cycle: spawn, wait for the exec (or not), reap. Returns 0, an errno with *what set, or -1
 * when the child itself failed (*what says how). */
static int
one_cycle(method_kind kind, const char *path, cycle_times *out, const char **what)
{
    char *argv[] = {(char *)path, NULL};
    char *envp[] = {NULL};
    int pipe_fds[2], status = 0, err;
    pid_t pid;
    char byte;
    int64_t start_ns;

    if (pipe2(pipe_fds, O_CLOEXEC) != 0) {
        *what = "pipe2";
        return errno;
    }
    *shared_stamp = -1;
    start_ns = monotonic_ns();
    switch (kind) {
    case FORK_EXIT:
    case FORK_EXECVE:
        pid = fork();
        if (pid == 0) {
            *shared_stamp = monotonic_ns();
            if (kind == FORK_EXECVE) execve(path, argv, envp);
            _exit(kind == FORK_EXIT ? 0 : EXEC_FAILED_STATUS);
        }
        *what = "fork";
        break;
    case VFORK_EXECVE:
        pid = vfork_exec(path, argv, envp);
        *what = "vfork";
        break;
    default:
        err = posix_spawn(&pid, path, NULL, NULL, argv, envp);
        if (err != 0) {
            close(pipe_fds[0]);
            close(pipe_fds[1]);
            *what = "posix_spawn";
            return err;
        }
        break;
    }
    if (pid < 0) {
        err = errno;
        close(pipe_fds[0]);
        close(pipe_fds[1]);
        return err;
    }
    out->returned_ns = monotonic_ns() - start_ns;
    close(pipe_fds[1]);
    out->exec_ns = -1;
    if (kind != FORK_EXIT) {
        /* EOF once no process holds the write end: the child's copy closes in its execve. */
        while (read(pipe_fds[0], &byte, 1) < 0 && errno == EINTR) {
        }
        out->exec_ns = monotonic_ns() - start_ns;
    }
    close(pipe_fds[0]);
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            *what = "waitpid";
            return errno;
        }
    }
    out->reaped_ns = monotonic_ns() - start_ns;
    out->child_start_ns = *shared_stamp < 0 ? -1 : *shared_stamp - start_ns;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        *what = WIFEXITED(status) && WEXITSTATUS(status) == EXEC_FAILED_STATUS
                    ? "execve in the child (exit status 127)"
                    : "the child (it did not exit with status 0)";
        return -1;
    }
    return 0;
}

static PyObject *
spawn_cycles(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"method", "path", "count", NULL};
    const char *name, *path, *what = "";
    long long count;
    int method = -1, err = 0;
    long long i, done = 0;
    cycle_times *times;
    PyObject *result;
    (void)self;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "ssL:cycles", keywords, &name, &path, &count))
        return NULL;
    for (int m = 0; m < METHOD_COUNT; m++)
        if (strcmp(name, METHOD_TABLE[m].name) == 0) method = m;
    if (method < 0) {
        PyErr_Format(PyExc_ValueError, "unknown method %s", name);
        return NULL;
    }
    if (count < 1 || count > MAX_CYCLES) {
        PyErr_Format(PyExc_ValueError, "count must be in 1..%d", MAX_CYCLES);
        return NULL;
    }
    if (shared_stamp == NULL) {
        void *page = mmap(NULL, sizeof(int64_t), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                          -1, 0);
        if (page == MAP_FAILED) return PyErr_SetFromErrno(PyExc_OSError);
        shared_stamp = page;
    }
    times = PyMem_Calloc((size_t)count, sizeof(cycle_times));
    if (times == NULL) return PyErr_NoMemory();

    Py_BEGIN_ALLOW_THREADS
    for (i = 0; i < count; i++) {
        err = one_cycle(METHOD_TABLE[method].kind, path, &times[i], &what);
        if (err != 0) break;
        done++;
    }
    Py_END_ALLOW_THREADS

    if (err < 0) {
        PyMem_Free(times);
        PyErr_Format(PyExc_RuntimeError, "%s failed for %s %s", what, name, path);
        return NULL;
    }
    if (err != 0) {
        /* OSError(errno, message): the probe reads .errno (EAGAIN under a pids limit, say). */
        PyObject *message = PyUnicode_FromFormat("%s failed for %s %s: %s", what, name, path,
                                                 strerror(err));
        PyObject *exc_args = message ? Py_BuildValue("(iN)", err, message) : NULL;
        PyMem_Free(times);
        if (exc_args != NULL) {
            PyErr_SetObject(PyExc_OSError, exc_args);
            Py_DECREF(exc_args);
        }
        return NULL;
    }
    result = PyList_New(0);
    for (i = 0; result != NULL && i < done; i++) {
        PyObject *item = Py_BuildValue("(LLLL)", (long long)times[i].returned_ns,
                                       (long long)times[i].child_start_ns,
                                       (long long)times[i].exec_ns, (long long)times[i].reaped_ns);
        if (item == NULL || PyList_Append(result, item) != 0) {
            Py_XDECREF(item);
            Py_CLEAR(result);
            break;
        }
        Py_DECREF(item);
    }
    PyMem_Free(times);
    return result;
}

static PyObject *
map_touched(PyObject *self, PyObject *args)
{
    Py_ssize_t size_bytes;
    long page_bytes = sysconf(_SC_PAGESIZE);
    char *base;
    (void)self;

    if (!PyArg_ParseTuple(args, "n:map_touched", &size_bytes)) return NULL;
    if (size_bytes < 1) {
        PyErr_SetString(PyExc_ValueError, "size_bytes must be positive");
        return NULL;
    }
    base = mmap(NULL, (size_t)size_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
                0);
    if (base == MAP_FAILED) return PyErr_SetFromErrno(PyExc_OSError);
    /* 4 KiB pages whatever the THP mode: the page-table copy fork makes is then per 4 KiB page,
     * the same figure on every host (a huge page would be one entry for 2 MiB). */
    madvise(base, (size_t)size_bytes, MADV_NOHUGEPAGE);
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t offset = 0; offset < size_bytes; offset += page_bytes)
        ((volatile char *)base)[offset] = 1;
    Py_END_ALLOW_THREADS
    return PyLong_FromVoidPtr(base);
}

static PyObject *
unmap(PyObject *self, PyObject *args)
{
    PyObject *address;
    Py_ssize_t size_bytes;
    void *base;
    (void)self;

    if (!PyArg_ParseTuple(args, "On:unmap", &address, &size_bytes)) return NULL;
    base = PyLong_AsVoidPtr(address);
    if (base == NULL && PyErr_Occurred()) return NULL;
    if (munmap(base, (size_t)size_bytes) != 0) return PyErr_SetFromErrno(PyExc_OSError);
    Py_RETURN_NONE;
}

static PyMethodDef spawn_methods[] = {
    {"cycles", (PyCFunction)(void (*)(void))spawn_cycles, METH_VARARGS | METH_KEYWORDS,
     "cycles(method, path, count) -> [(returned_ns, child_start_ns, exec_ns, reaped_ns)]"},
    {"map_touched", map_touched, METH_VARARGS,
     "map_touched(size_bytes) -> address of a private anonymous map with every page written"},
    {"unmap", unmap, METH_VARARGS, "unmap(address, size_bytes): munmap a map_touched region"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef spawn_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_spawn",
    .m_doc = "fork, vfork and posix_spawn cycles timed in C, and touched parent memory.",
    .m_size = -1,
    .m_methods = spawn_methods,
};

PyMODINIT_FUNC
PyInit__spawn(void)
{
    PyObject *module = PyModule_Create(&spawn_module);
    PyObject *methods;
    if (module == NULL) return NULL;
    methods = Py_BuildValue("(ssss)", METHOD_TABLE[0].name, METHOD_TABLE[1].name,
                            METHOD_TABLE[2].name, METHOD_TABLE[3].name);
    if (methods == NULL || PyModule_AddObject(module, "METHODS", methods) != 0) {
        Py_XDECREF(methods);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
