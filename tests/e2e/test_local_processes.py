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
