"""local.processes ties every child to the life of the process that started it, not of the thread."""

from __future__ import annotations

import threading
import time

from local.processes import spawn, stop


def test_a_process_started_from_a_thread_that_ends_keeps_running():
    # PR_SET_PDEATHSIG fires when the forking *thread* ends: a supervisor's or a test's thread must not take
    # the functions it started down with it.
    started = []
    thread = threading.Thread(target=lambda: started.append(spawn(["sleep", "30"])))
    thread.start()
    thread.join()
    try:
        time.sleep(0.3)

        assert started[0].poll() is None
    finally:
        stop(started)


def test_ports_are_chosen_outside_the_range_outgoing_connections_take_theirs_from():
    # A port from the ephemeral range can become an outgoing connection's local port between being chosen and a
    # server binding it, or while a server restarts on it: a warm shop's function once could not bind for minutes.
    import socket

    from local.processes import LOWEST_PORT, ephemeral_ports, free_ports

    ephemeral = ephemeral_ports()
    ports = free_ports(50)
    assert len(set(ports)) == 50
    assert all(LOWEST_PORT <= port < 65536 and port not in ephemeral for port in ports)
    for port in ports[:5]:
        with socket.socket() as server:
            server.bind(("127.0.0.1", port))  # free: a server can take it


def test_a_host_that_gives_nearly_every_port_to_outgoing_connections_still_gets_free_ports(monkeypatch):
    from local import processes

    monkeypatch.setattr(processes, "ephemeral_ports", lambda: range(1024, 65536))
    ports = processes.free_ports(6)
    assert len(set(ports)) == 6
