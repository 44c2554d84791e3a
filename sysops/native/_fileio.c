/*
 * File I/O timed one operation at a time: pwrite (alone, or followed by fsync or fdatasync),
 * pread, and pread after dropping the range from the page cache.
 *
 * Each operation is bracketed by two CLOCK_MONOTONIC reads in C with the GIL released, and its
 * latency stored in a caller's int64 buffer: the distribution (median, p99, p99.9) is the
 * point of the file-io experiment, so a total over the loop would not do. What the open flags
 * add (O_SYNC, O_DSYNC, O_DIRECT) the caller chose when it opened the fd.
 *
 * Limited API (abi3), like _native.c: one .so for the development interpreter and the
 * sandbox's /usr/bin/python3.
 */
#define Py_LIMITED_API 0x030B0000
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef enum {
    OP_WRITE,
    OP_WRITE_FSYNC,
    OP_WRITE_FDATASYNC,
    OP_READ,
    OP_READ_COLD,
    OP_COUNT,
} op_kind;

static const char *const OP_NAMES[OP_COUNT] = {
    "write", "write_fsync", "write_fdatasync", "read", "read_cold",
};

/* A short transfer is not an errno: reported as this instead. */
#define SHORT_TRANSFER (-1)

static int64_t
ns_between(const struct timespec *start, const struct timespec *end)
{
    return (int64_t)(end->tv_sec - start->tv_sec) * 1000000000 + (end->tv_nsec - start->tv_nsec);
}

/* One operation at ``offset``; 0, an errno, or SHORT_TRANSFER. The cold read's fadvise runs
 * before the clock starts: the figure is the read from the device, not the cache drop. */
static int
one_op(op_kind op, int fd, char *buf, size_t block, off_t offset, int64_t *latency_ns)
{
    ssize_t done;
    struct timespec start, end;
    if (op == OP_READ_COLD) {
        int err = posix_fadvise(fd, offset, (off_t)block, POSIX_FADV_DONTNEED);
        if (err)
            return err;
    }
    clock_gettime(CLOCK_MONOTONIC, &start);
    if (op == OP_READ || op == OP_READ_COLD)
        done = pread(fd, buf, block, offset);
    else
        done = pwrite(fd, buf, block, offset);
    if (done < 0)
        return errno;
    if (op == OP_WRITE_FSYNC && fsync(fd) != 0)
        return errno;
    if (op == OP_WRITE_FDATASYNC && fdatasync(fd) != 0)
        return errno;
    clock_gettime(CLOCK_MONOTONIC, &end);
    *latency_ns = ns_between(&start, &end);
    return (size_t)done == block ? 0 : SHORT_TRANSFER;
}

static PyObject *
run_ops(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"fd", "op", "buffer", "block_bytes", "file_bytes", "first_op",
                               "latencies", NULL};
    int fd;
    const char *op_name;
    Py_buffer data, out;
    Py_ssize_t block, file_bytes, first_op;
    (void)self;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "isw*nnnw*:run_ops", keywords, &fd, &op_name,
                                     &data, &block, &file_bytes, &first_op, &out))
        return NULL;

    PyObject *result = NULL;
    int op = -1;
    for (int i = 0; i < OP_COUNT; i++)
        if (strcmp(op_name, OP_NAMES[i]) == 0)
            op = i;
    Py_ssize_t count = out.len / (Py_ssize_t)sizeof(int64_t);
    if (op < 0)
        PyErr_Format(PyExc_ValueError, "unknown op %s", op_name);
    else if (block < 1 || data.len < block || file_bytes < block || file_bytes % block)
        PyErr_SetString(PyExc_ValueError,
                        "need 1 <= block_bytes <= len(buffer), file_bytes a multiple of it");
    else if (first_op < 0 || count < 1)
        PyErr_SetString(PyExc_ValueError, "need first_op >= 0 and room for one latency");
    else {
        int64_t *latencies = (int64_t *)out.buf;
        Py_ssize_t slots = file_bytes / block, done = 0;
        int err = 0;
        Py_BEGIN_ALLOW_THREADS
        for (; done < count; done++) {
            off_t offset = (off_t)((first_op + done) % slots) * (off_t)block;
            err = one_op((op_kind)op, fd, (char *)data.buf, (size_t)block, offset,
                         &latencies[done]);
            if (err)
                break;
        }
        Py_END_ALLOW_THREADS
        result = Py_BuildValue("(ni)", done, err);
    }
    PyBuffer_Release(&data);
    PyBuffer_Release(&out);
    return result;
}

static PyMethodDef fileio_methods[] = {
    {"run_ops", (PyCFunction)(void (*)(void))run_ops, METH_VARARGS | METH_KEYWORDS,
     "run_ops(fd, op, buffer, block_bytes, file_bytes, first_op, latencies) -> (done, err)\n"
     "len(latencies) // 8 operations of ``op`` (write, write_fsync, write_fdatasync, read, "
     "read_cold) at offsets ((first_op + i) * block_bytes) % file_bytes, each one's ns stored "
     "in latencies (int64). Stops at the first failure: err is its errno, -1 for a short "
     "transfer, 0 when all were done."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef fileio_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_fileio",
    .m_doc = "File I/O operations timed one at a time in C (see sysops/experiments/file_io).",
    .m_size = -1,
    .m_methods = fileio_methods,
};

PyMODINIT_FUNC
PyInit__fileio(void)
{
    return PyModule_Create(&fileio_module);
}
