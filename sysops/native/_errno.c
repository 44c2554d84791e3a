/*
 * Calls the kernel refuses, made from C at two layers: the bare `syscall` instruction (what the
 * kernel itself returns: -errno in the result register, nothing else), and libc's wrapper (which
 * turns that into -1 and sets errno). The errno-boundary experiment adds Python's layer beside
 * them. Each is timed over a loop with the GIL released: a refused call still enters the kernel.
 *
 * Built against the limited API (abi3), like _native.c.
 */
#define Py_LIMITED_API 0x030B0000
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "probe_timing.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

/* The syscall instruction itself, with no libc in between: the kernel's own answer, -errno on
 * failure. x86_64: number in rax, arguments in rdi rsi rdx r10 r8 r9, rcx and r11 clobbered;
 * aarch64: number in x8, arguments in x0..x5, result in x0. */
static long
raw_syscall(long number, long a1, long a2, long a3)
{
#if defined(__x86_64__)
    long result;
    __asm__ __volatile__("syscall"
                         : "=a"(result)
                         : "a"(number), "D"(a1), "S"(a2), "d"(a3)
                         : "rcx", "r11", "memory");
    return result;
#elif defined(__aarch64__)
    register long x8 __asm__("x8") = number;
    register long x0 __asm__("x0") = a1;
    register long x1 __asm__("x1") = a2;
    register long x2 __asm__("x2") = a3;
    __asm__ __volatile__("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2) : "memory");
    return x0;
#else
#error "raw_syscall: only x86_64 and aarch64"
#endif
}

typedef enum { CALL_WRITE, CALL_READ, CALL_PIPE2, CALL_EXECVE, CALL_SETPGID } call_kind;

static const struct {
    const char *name;
    call_kind kind;
} CALL_TABLE[] = {
    {"write", CALL_WRITE},   /* write(fd, (void *)arg, 1) */
    {"read", CALL_READ},     /* read(fd, buffer, 1) */
    {"pipe2", CALL_PIPE2},   /* pipe2(fds, arg) */
    {"execve", CALL_EXECVE}, /* execve(path, {path, NULL}, {NULL}) */
    {"setpgid", CALL_SETPGID}, /* setpgid(0, arg) */
};
#define CALL_COUNT ((int)(sizeof(CALL_TABLE) / sizeof(CALL_TABLE[0])))

typedef struct {
    int fd;
    long arg;
    const char *path;
} call_args;

/* One call at one layer. Returns what that layer returns; *err gets the errno the layer
 * reports (raw: -result when negative; libc: errno when the result is -1), 0 on success. */
static long
one_call(call_kind kind, int raw, const call_args *a, int *err)
{
    char buffer[1];
    int fds[2] = {-1, -1};
    char *const argv[] = {(char *)a->path, NULL};
    char *const envp[] = {NULL};
    long result = 0;
    errno = 0;
    switch (kind) {
    case CALL_WRITE:
        result = raw ? raw_syscall(SYS_write, a->fd, a->arg, 1) : write(a->fd, (void *)a->arg, 1);
        break;
    case CALL_READ:
        result = raw ? raw_syscall(SYS_read, a->fd, (long)buffer, 1) : read(a->fd, buffer, 1);
        break;
    case CALL_PIPE2:
        result = raw ? raw_syscall(SYS_pipe2, (long)fds, a->arg, 0) : pipe2(fds, (int)a->arg);
        break;
    case CALL_EXECVE:
        result = raw ? raw_syscall(SYS_execve, (long)a->path, (long)argv, (long)envp)
                     : execve(a->path, argv, envp);
        break;
    case CALL_SETPGID:
        result = raw ? raw_syscall(SYS_setpgid, 0, a->arg, 0) : setpgid(0, (pid_t)a->arg);
        break;
    }
    if (raw)
        *err = result < 0 ? (int)-result : 0;
    else
        *err = result == -1 ? errno : 0;
    /* A call that was meant to be refused and was not must leave nothing behind. */
    if (*err == 0 && kind == CALL_PIPE2) {
        close(fds[0]);
        close(fds[1]);
    }
    return result;
}

static PyObject *
refused(PyObject *module, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"call", "layer", "iterations", "fd", "arg", "path", NULL};
    const char *name, *layer, *path = "";
    long long iterations;
    call_args a = {-1, 0, NULL};
    (void)module;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "ssL|ils:refused", keywords, &name, &layer,
                                     &iterations, &a.fd, &a.arg, &path)) {
        return NULL;
    }
    a.path = path;
    int index = -1;
    for (int i = 0; i < CALL_COUNT; i++) {
        if (strcmp(name, CALL_TABLE[i].name) == 0) index = i;
    }
    if (index < 0) return PyErr_Format(PyExc_ValueError, "unknown call '%s'", name);
    int raw;
    if (strcmp(layer, "raw") == 0)
        raw = 1;
    else if (strcmp(layer, "libc") == 0)
        raw = 0;
    else
        return PyErr_Format(PyExc_ValueError, "unknown layer '%s': raw or libc", layer);
    if (iterations < 1) return PyErr_Format(PyExc_ValueError, "iterations must be at least 1");

    call_kind kind = CALL_TABLE[index].kind;
    long result = 0;
    int err = 0;
    long long done = 0;
    int64_t start_ns, elapsed_ns;
    Py_BEGIN_ALLOW_THREADS
    start_ns = probe_monotonic_ns();
    for (done = 0; done < iterations; done++) {
        result = one_call(kind, raw, &a, &err);
        COMPILER_BARRIER();
        if (err == 0) { /* not refused: stop at once, the caller reports it */
            done++;
            break;
        }
    }
    elapsed_ns = probe_monotonic_ns() - start_ns;
    Py_END_ALLOW_THREADS
    return Py_BuildValue("{slsisLsL}", "result", result, "errno", err, "elapsed_ns",
                         (long long)elapsed_ns, "calls", done);
}

/* The signal handler of interrupted_read: it runs while the read is blocked, and writes the byte
 * that read is waiting for. With SA_RESTART the kernel restarts the read, which then returns that
 * byte; without it, the read returns EINTR and the byte stays in the pipe. */
static volatile sig_atomic_t handler_runs;
static int handler_write_fd = -1;

static void
on_alarm(int signum)
{
    int saved = errno;
    static const char byte = 'x';
    (void)signum;
    handler_runs++;
    /* Best effort: a full pipe is impossible here (it holds at most this one byte). */
    ssize_t ignored = write(handler_write_fd, &byte, 1);
    (void)ignored;
    errno = saved;
}

static PyObject *
interrupted_read(PyObject *module, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"layer", "read_fd", "write_fd", "restart", "delay_us", NULL};
    const char *layer;
    int read_fd, write_fd, restart;
    long delay_us;
    (void)module;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "siipl:interrupted_read", keywords, &layer,
                                     &read_fd, &write_fd, &restart, &delay_us)) {
        return NULL;
    }
    int raw = strcmp(layer, "raw") == 0;
    if (!raw && strcmp(layer, "libc") != 0)
        return PyErr_Format(PyExc_ValueError, "unknown layer '%s': raw or libc", layer);
    if (delay_us < 1 || delay_us > 10000000)
        return PyErr_Format(PyExc_ValueError, "delay_us must be in 1..10000000");

    struct sigaction action, previous;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_alarm;
    sigemptyset(&action.sa_mask);
    action.sa_flags = restart ? SA_RESTART : 0;
    /* One shot. Should it land before the read blocks (a delay shorter than a preemption), the
     * byte is already there and the read returns it at once: reported as it happened. */
    struct itimerval timer = {{0, 0}, {delay_us / 1000000, delay_us % 1000000}};
    struct itimerval disarm = {{0, 0}, {0, 0}};
    char buffer[1];
    long result;
    int err;
    int64_t start_ns, elapsed_ns;
    int runs;

    handler_runs = 0;
    handler_write_fd = write_fd;
    if (sigaction(SIGALRM, &action, &previous) != 0)
        return PyErr_SetFromErrnoWithFilename(PyExc_OSError, "sigaction");
    Py_BEGIN_ALLOW_THREADS
    start_ns = probe_monotonic_ns();
    setitimer(ITIMER_REAL, &timer, NULL);
    errno = 0;
    if (raw) {
        result = raw_syscall(SYS_read, read_fd, (long)buffer, 1);
        err = result < 0 ? (int)-result : 0;
    } else {
        result = read(read_fd, buffer, 1);
        err = result == -1 ? errno : 0;
    }
    elapsed_ns = probe_monotonic_ns() - start_ns;
    setitimer(ITIMER_REAL, &disarm, NULL);
    runs = handler_runs;
    /* Drain what the handler wrote and the read did not take, for the next repetition. */
    struct pollfd ready = {read_fd, POLLIN, 0};
    while (poll(&ready, 1, 0) == 1 && (ready.revents & POLLIN) && read(read_fd, buffer, 1) == 1) {
    }
    Py_END_ALLOW_THREADS
    sigaction(SIGALRM, &previous, NULL);
    handler_write_fd = -1;
    return Py_BuildValue("{slsisLsi}", "result", result, "errno", err, "elapsed_ns",
                         (long long)elapsed_ns, "handler_runs", runs);
}

/* One PROT_NONE page, mapped once and kept for the life of the process: a pointer into it is a
 * bad pointer that nothing can ever make good (no allocator will hand this page out). */
static PyObject *
bad_address(PyObject *module, PyObject *unused)
{
    static void *page = NULL;
    (void)module;
    (void)unused;
    if (page == NULL) {
        void *mapped = mmap(NULL, (size_t)sysconf(_SC_PAGESIZE), PROT_NONE,
                            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (mapped == MAP_FAILED) return PyErr_SetFromErrnoWithFilename(PyExc_OSError, "mmap");
        page = mapped;
    }
    return PyLong_FromVoidPtr(page);
}

static PyMethodDef boundary_methods[] = {
    {"refused", (PyCFunction)(void (*)(void))refused, METH_VARARGS | METH_KEYWORDS,
     "refused(call, layer, iterations, fd=-1, arg=0, path='') -> dict\n--\n\n"
     "`iterations` calls of `call` (write, read, pipe2, execve, setpgid) at `layer` ('raw': the\n"
     "syscall instruction; 'libc': the wrapper), GIL released. Stops at the first call that\n"
     "succeeds. Returns result (the last return value), errno, elapsed_ns and calls."},
    {"interrupted_read", (PyCFunction)(void (*)(void))interrupted_read,
     METH_VARARGS | METH_KEYWORDS,
     "interrupted_read(layer, read_fd, write_fd, restart, delay_us) -> dict\n--\n\n"
     "A blocking 1-byte read on read_fd, interrupted by SIGALRM from setitimer after delay_us;\n"
     "the handler (SA_RESTART or not) writes one byte to write_fd. Returns result, errno,\n"
     "elapsed_ns and handler_runs."},
    {"bad_address", bad_address, METH_NOARGS,
     "bad_address() -> int\n--\n\nThe address of a PROT_NONE page kept for the process."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef boundary_module = {
    PyModuleDef_HEAD_INIT,
    "_errno",
    "Calls the kernel refuses, at the syscall-instruction and libc layers.",
    -1,
    boundary_methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC
PyInit__errno(void)
{
    return PyModule_Create(&boundary_module);
}
