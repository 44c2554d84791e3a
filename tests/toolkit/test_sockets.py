from __future__ import annotations

import errno
import socket

from sysops.worker.toolkit import sockets

# Captured from this kernel's /proc/net/tcp inside a sandbox: a listener, a TIME_WAIT socket,
# and an established connection with its keepalive timer running.
PROC_NET_TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:B43B 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 412 1
   1: 0100007F:B43B 0100007F:E6FE 06 00000000:00000000 03:00001770 00000000     0        0 0 3
   2: 0100007F:DCC4 0100007F:D5C9 01 00000010:00000020 02:00000036 00000000     0        0 433 1
"""


def test_it_decodes_addresses_states_and_timers_from_the_hex() -> None:
    listen, time_wait, established = sockets.parse_proc_net_tcp(PROC_NET_TCP)
    assert listen.local == "127.0.0.1:46139" and listen.state == "LISTEN"
    assert listen.remote == "0.0.0.0:0" and listen.timer == "none"
    assert time_wait.remote == "127.0.0.1:59134" and time_wait.state == "TIME_WAIT"
    assert time_wait.timer == "TIME_WAIT" and time_wait.timer_s == 60.0
    assert established.state == "ESTABLISHED" and established.timer == "keepalive"
    assert established.timer_s == 0.54
    assert (established.tx_queue_bytes, established.rx_queue_bytes) == (16, 32)
    assert established.raw["local_address"] == "0100007F:DCC4"


def test_a_non_blocking_connect_reports_einprogress_and_the_socket_is_blocking_after() -> None:
    with sockets.listener(1) as listener:
        port = listener.getsockname()[1]
        assert [e.state for e in sockets.proc_net_tcp(port)] == ["LISTEN"]
        sock, first = sockets.connect(port)
        with sock:
            assert first in (errno.EINPROGRESS, 0)
            assert sock.getblocking()
            conn, _ = listener.accept()
            with conn:
                assert sockets.send_all(sock, memoryview(b"abcd")) == 1
                view = memoryview(bytearray(4))
                assert sockets.recv_exact(conn, view) >= 1 and bytes(view) == b"abcd"
                sock.shutdown(socket.SHUT_WR)
                assert sockets.drain(conn, 16) == (0, 1)
    assert "LISTEN" not in [e.state for e in sockets.proc_net_tcp(port)]
