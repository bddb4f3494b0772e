"""`make test` runs pytest-xdist workers: a pytest killed outright takes them (and so their shops) with it, and each
picks ports from a slice of its own."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from local import pids
from local.processes import LOWEST_PORT, PORT_RANGE, ROOT, ephemeral_ports, free_ports
from tests.xdist_worker import port_slice


def _alive(pid: int) -> bool:
    """Running: neither gone nor a zombie left for whoever adopted it to reap."""
    return pids.start_time(pid) is not None


def test_a_sigkilled_pytest_takes_its_xdist_worker_with_it(tmp_path):
    pid_file = tmp_path / "worker.pid"
    (tmp_path / "test_sleeps.py").write_text(
        "import os, time\n\n\ndef test_sleeps():\n"
        f"    open({str(pid_file)!r}, 'w').write(str(os.getpid()))\n    time.sleep(60)\n")
    run = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-n", "1", "-p", "tests.xdist_worker",
                            "-p", "no:cacheprovider", "-c", os.devnull, "--rootdir", str(tmp_path), str(tmp_path)],
                           cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
            time.sleep(0.1)
        worker = int(pid_file.read_text())
        assert _alive(worker)

        run.send_signal(signal.SIGKILL)
        run.wait()
        deadline = time.monotonic() + 5
        while _alive(worker) and time.monotonic() < deadline:
            time.sleep(0.05)

        assert not _alive(worker)
    finally:
        run.kill()
        if pid_file.exists() and pid_file.read_text() and _alive(int(pid_file.read_text())):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)


def test_workers_get_disjoint_port_slices_below_the_ephemeral_range():
    slices = [range(int(low), int(high) + 1) for low, high in
              (port_slice(index, 3).split("-") for index in range(3))]

    assert all(not set(a) & set(b) for a in slices for b in slices if a is not b)
    assert slices[0].start == LOWEST_PORT and slices[-1].stop <= ephemeral_ports().start


def test_ports_are_chosen_from_this_process_s_port_range(monkeypatch):
    monkeypatch.setenv(PORT_RANGE, "15000-16199")

    assert all(15000 <= port <= 16199 for port in free_ports(30))
