/*
 * TCP loops in C for the tcp and socket-options experiments: connect latency, accept, ping-pong
 * round trips, bulk send and receive, each on descriptors the caller owns (or creates here, for
 * connect), with the GIL released around the loop.
 *
 * A Python loop adds a microsecond or more per message of interpreter work around each send and
 * recv, which on loopback is a large share of a round trip. Here the loop is the syscalls and
 * the clock reads only. Every loop counts the syscalls it made, so a result can say how many
 * calls one message took (a short send or recv makes it more than one).
 *
 * Built against the limited API (abi3), like _native.c.
 */
#define Py_LIMITED_API 0x030B0000
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MESSAGE_BYTES_MAX (16 * 1024 * 1024)

static int64_t
monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static PyObject *
raise_errno(const char *what, int err)
{
    PyObject *exc = PyObject_CallFunction(PyExc_OSError, "iss", err, strerror(err), what);
    if (exc == NULL) return NULL;
    PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
    Py_DECREF(exc);
    return NULL;
}

static int
check_size(long long size)
{
    if (size < 1 || size > MESSAGE_BYTES_MAX) {
        PyErr_Format(PyExc_ValueError, "size must be in 1..%d bytes, got %lld", MESSAGE_BYTES_MAX,
                     size);
        return -1;
    }
    return 0;
}

/* Parses (fd, size) with `format` and allocates a `size`-byte buffer (zeroed); NULL with an
 * exception set on bad arguments or no memory. */
static char *
fd_and_buffer(PyObject *args, const char *format, int *fd, long long *size)
{
    if (!PyArg_ParseTuple(args, format, fd, size)) return NULL;
    if (check_size(*size) < 0) return NULL;
    char *buf = PyMem_Calloc((size_t)*size, 1);
    if (buf == NULL) PyErr_NoMemory();
    return buf;
}

/* send all `size` bytes; counts every call. Returns 0, or -1 with errno set. */
static int
send_all(int fd, const char *buf, size_t size, long long *calls)
{
    size_t done = 0;
    while (done < size) {
        ssize_t n = send(fd, buf + done, size - done, MSG_NOSIGNAL);
        (*calls)++;
        if (n < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        done += (size_t)n;
    }
    return 0;
}

/* recv exactly `size` bytes; returns 1 done, 0 on EOF before the first byte, -1 with errno
 * (ECONNRESET for EOF in the middle of a message). */
static int
recv_all(int fd, char *buf, size_t size, long long *calls)
{
    size_t done = 0;
    while (done < size) {
        ssize_t n = recv(fd, buf + done, size - done, 0);
        (*calls)++;
        if (n < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (n == 0) {
            if (done == 0) return 0;
            errno = ECONNRESET;
            return -1;
        }
        done += (size_t)n;
    }
    return 1;
}

/* wait for `events` on fd (up to 5 s); counts the poll calls. Returns 0, or -1 with errno. */
static int
wait_for(int fd, short events, long long *calls)
{
    struct pollfd pfd = {.fd = fd, .events = events};
    int rc;
    do {
        rc = poll(&pfd, 1, 5000);
        (*calls)++;
    } while (rc < 0 && errno == EINTR);
    if (rc == 0) errno = ETIMEDOUT;
    return rc > 0 ? 0 : -1;
}

/* connect_ns(port, count) -> (bytes of int64 ns pairs, syscalls)
 * Each connection: socket(SOCK_NONBLOCK), connect (EINPROGRESS), poll for POLLOUT,
 * getsockopt(SO_ERROR), then poll for POLLIN and recv the server's EOF (it accepts and closes
 * at once), close. Two times per connection: connect() to writable (the handshake as the client
 * sees it) and connect() to the server's FIN (accept4 and close on the other side included).
 * The server closes first, so TIME_WAIT stays on its side and the client's ports stay free. */
static PyObject *
connect_ns(PyObject *module, PyObject *args)
{
    int port;
    Py_ssize_t count;
    (void)module;
    if (!PyArg_ParseTuple(args, "in:connect_ns", &port, &count)) return NULL;
    if (port < 1 || port > 65535 || count < 1 || count > 10000000) {
        return PyErr_Format(PyExc_ValueError, "port 1..65535 and count 1..10^7, got %d, %zd",
                            port, count);
    }
    int64_t *times = PyMem_Malloc((size_t)count * 2 * sizeof(int64_t));
    if (times == NULL) return PyErr_NoMemory();
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    long long calls = 0;
    int err = 0;
    const char *what = NULL;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < count && what == NULL; i++) {
        char byte;
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        calls++;
        if (fd < 0) {
            err = errno;
            what = "socket";
            break;
        }
        int64_t start_ns = monotonic_ns();
        int rc = connect(fd, (struct sockaddr *)&addr, sizeof addr);
        calls++;
        if (rc < 0 && errno == EINPROGRESS) {
            int so_error = 0;
            socklen_t len = sizeof so_error;
            if (wait_for(fd, POLLOUT, &calls) < 0) {
                so_error = errno;
            } else {
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &len);
                calls++;
            }
            rc = so_error ? -1 : 0;
            errno = so_error;
        }
        times[2 * i] = monotonic_ns() - start_ns;
        if (rc < 0) {
            err = errno;
            what = "connect";
        } else if (wait_for(fd, POLLIN, &calls) < 0) {
            err = errno;
            what = "poll for the server's FIN";
        } else {
            ssize_t n = recv(fd, &byte, 1, 0);
            calls++;
            times[2 * i + 1] = monotonic_ns() - start_ns;
            if (n != 0) {
                err = n < 0 ? errno : EPROTO;
                what = "recv of the server's FIN";
            }
        }
        close(fd);
        calls++;
    }
    Py_END_ALLOW_THREADS
    if (what != NULL) {
        PyMem_Free(times);
        return raise_errno(what, err);
    }
    PyObject *data = PyBytes_FromStringAndSize((const char *)times,
                                               count * 2 * (Py_ssize_t)sizeof(int64_t));
    PyMem_Free(times);
    if (data == NULL) return NULL;
    return Py_BuildValue("(NL)", data, calls);
}

/* accept_loop(listen_fd, control_fd) -> (accepted, syscalls)
 * poll on the listening socket and the control pipe; accept4 + close each connection; return
 * when the control pipe is readable (EOF: the parent said stop). */
static PyObject *
accept_loop(PyObject *module, PyObject *args)
{
    int listen_fd, control_fd;
    (void)module;
    if (!PyArg_ParseTuple(args, "ii:accept_loop", &listen_fd, &control_fd)) return NULL;
    long long accepted = 0, calls = 0;
    int err = 0;
    const char *what = NULL;
    Py_BEGIN_ALLOW_THREADS
    struct pollfd pfds[2] = {{.fd = listen_fd, .events = POLLIN}, {.fd = control_fd, .events = POLLIN}};
    for (;;) {
        int rc = poll(pfds, 2, -1);
        calls++;
        if (rc < 0) {
            if (errno == EINTR) continue;
            err = errno;
            what = "poll";
            break;
        }
        if (pfds[0].revents & POLLIN) {
            int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
            calls++;
            if (fd < 0) {
                if (errno == EINTR || errno == ECONNABORTED) continue;
                err = errno;
                what = "accept4";
                break;
            }
            accepted++;
            close(fd);
            calls++;
            continue; /* drain the queue before looking at the control pipe */
        }
        if (pfds[1].revents) break;
    }
    Py_END_ALLOW_THREADS
    if (what != NULL) return raise_errno(what, err);
    return Py_BuildValue("(LL)", accepted, calls);
}

/* echo_loop(fd, size) -> (messages, recv_calls, send_calls)
 * Read a whole message of `size` bytes, send it back; until the peer's EOF. */
static PyObject *
echo_loop(PyObject *module, PyObject *args)
{
    int fd;
    long long size;
    (void)module;
    char *buf = fd_and_buffer(args, "iL:echo_loop", &fd, &size);
    if (buf == NULL) return NULL;
    long long messages = 0, recv_calls = 0, send_calls = 0;
    int err = 0;
    const char *what = NULL;
    Py_BEGIN_ALLOW_THREADS
    for (;;) {
        int rc = recv_all(fd, buf, (size_t)size, &recv_calls);
        if (rc == 0) break;
        if (rc < 0) {
            err = errno;
            what = "recv";
            break;
        }
        if (send_all(fd, buf, (size_t)size, &send_calls) < 0) {
            err = errno;
            what = "send";
            break;
        }
        messages++;
    }
    Py_END_ALLOW_THREADS
    PyMem_Free(buf);
    if (what != NULL) return raise_errno(what, err);
    return Py_BuildValue("(LLL)", messages, recv_calls, send_calls);
}

/* pingpong_ns(fd, size, count) -> (bytes of int64 ns per round trip, send_calls, recv_calls) */
static PyObject *
pingpong_ns(PyObject *module, PyObject *args)
{
    int fd;
    long long size;
    Py_ssize_t count;
    (void)module;
    if (!PyArg_ParseTuple(args, "iLn:pingpong_ns", &fd, &size, &count)) return NULL;
    if (check_size(size) < 0) return NULL;
    if (count < 1 || count > 10000000) {
        return PyErr_Format(PyExc_ValueError, "count must be in 1..10^7, got %zd", count);
    }
    char *buf = PyMem_Calloc((size_t)size, 1);
    int64_t *times = PyMem_Malloc((size_t)count * sizeof(int64_t));
    if (buf == NULL || times == NULL) {
        PyMem_Free(buf);
        PyMem_Free(times);
        return PyErr_NoMemory();
    }
    long long send_calls = 0, recv_calls = 0;
    int err = 0;
    const char *what = NULL;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < count; i++) {
        int64_t start_ns = monotonic_ns();
        if (send_all(fd, buf, (size_t)size, &send_calls) < 0) {
            err = errno;
            what = "send";
            break;
        }
        int rc = recv_all(fd, buf, (size_t)size, &recv_calls);
        if (rc <= 0) {
            err = rc == 0 ? ECONNRESET : errno;
            what = "recv";
            break;
        }
        times[i] = monotonic_ns() - start_ns;
    }
    Py_END_ALLOW_THREADS
    PyMem_Free(buf);
    if (what != NULL) {
        PyMem_Free(times);
        return raise_errno(what, err);
    }
    PyObject *data = PyBytes_FromStringAndSize((const char *)times, count * (Py_ssize_t)sizeof(int64_t));
    PyMem_Free(times);
    if (data == NULL) return NULL;
    return Py_BuildValue("(NLL)", data, send_calls, recv_calls);
}

/* bulk_send(fd, size, max_messages, duration_ns) -> (messages, send_calls, elapsed_ns)
 * Send `size`-byte messages until max_messages are sent or duration_ns has passed. */
static PyObject *
bulk_send(PyObject *module, PyObject *args)
{
    int fd;
    long long size, max_messages, duration_ns;
    (void)module;
    if (!PyArg_ParseTuple(args, "iLLL:bulk_send", &fd, &size, &max_messages, &duration_ns)) {
        return NULL;
    }
    if (check_size(size) < 0) return NULL;
    if (max_messages < 1 || duration_ns < 1) {
        return PyErr_Format(PyExc_ValueError, "max_messages and duration_ns must be positive");
    }
    char *buf = PyMem_Calloc((size_t)size, 1);
    if (buf == NULL) return PyErr_NoMemory();
    long long messages = 0, calls = 0;
    int64_t elapsed_ns = 0;
    int err = 0;
    const char *what = NULL;
    Py_BEGIN_ALLOW_THREADS
    int64_t start_ns = monotonic_ns();
    while (messages < max_messages) {
        if (send_all(fd, buf, (size_t)size, &calls) < 0) {
            err = errno;
            what = "send";
            break;
        }
        messages++;
        elapsed_ns = monotonic_ns() - start_ns;
        if (elapsed_ns >= duration_ns) break;
    }
    elapsed_ns = monotonic_ns() - start_ns;
    Py_END_ALLOW_THREADS
    PyMem_Free(buf);
    if (what != NULL) return raise_errno(what, err);
    return Py_BuildValue("(LLL)", messages, calls, (long long)elapsed_ns);
}

/* sink_loop(fd, buffer_size) -> (bytes, recv_calls): read until the peer's EOF. */
static PyObject *
sink_loop(PyObject *module, PyObject *args)
{
    int fd;
    long long size;
    (void)module;
    char *buf = fd_and_buffer(args, "iL:sink_loop", &fd, &size);
    if (buf == NULL) return NULL;
    long long total = 0, calls = 0;
    int err = 0;
    const char *what = NULL;
    Py_BEGIN_ALLOW_THREADS
    for (;;) {
        ssize_t n = recv(fd, buf, (size_t)size, 0);
        calls++;
        if (n < 0) {
            if (errno == EINTR) continue;
            err = errno;
            what = "recv";
            break;
        }
        if (n == 0) break;
        total += n;
    }
    Py_END_ALLOW_THREADS
    PyMem_Free(buf);
    if (what != NULL) return raise_errno(what, err);
    return Py_BuildValue("(LL)", total, calls);
}

static PyMethodDef net_methods[] = {
    {"connect_ns", connect_ns, METH_VARARGS,
     "connect_ns(port, count) -> (bytes, syscalls)\n--\n\n"
     "`count` non-blocking connects to 127.0.0.1:port, each waiting for the server's FIN;\n"
     "two int64 ns per connection (to writable, to the FIN), packed, and the syscalls made."},
    {"accept_loop", accept_loop, METH_VARARGS,
     "accept_loop(listen_fd, control_fd) -> (accepted, syscalls)\n--\n\n"
     "poll + accept4 + close until control_fd is readable."},
    {"echo_loop", echo_loop, METH_VARARGS,
     "echo_loop(fd, size) -> (messages, recv_calls, send_calls)\n--\n\n"
     "Echo whole `size`-byte messages until EOF."},
    {"pingpong_ns", pingpong_ns, METH_VARARGS,
     "pingpong_ns(fd, size, count) -> (bytes, send_calls, recv_calls)\n--\n\n"
     "`count` round trips of `size` bytes; int64 ns per round trip, packed."},
    {"bulk_send", bulk_send, METH_VARARGS,
     "bulk_send(fd, size, max_messages, duration_ns) -> (messages, send_calls, elapsed_ns)"},
    {"sink_loop", sink_loop, METH_VARARGS,
     "sink_loop(fd, buffer_size) -> (bytes, recv_calls): read until EOF."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef net_module = {
    PyModuleDef_HEAD_INIT, "_net", "TCP loops in C (see sysops.native).", -1, net_methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__net(void)
{
    return PyModule_Create(&net_module);
}
