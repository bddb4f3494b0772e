"""make startup's marks: a sitecustomize that notes when each phase of a start begins, and the phases' arithmetic."""

import os
import subprocess
import sys
import time
from pathlib import Path

from bench.startup import MARKER, PHASES, phases

ROOT = Path(__file__).resolve().parents[2]


def test_the_marker_notes_each_phase_once_in_order_with_wall_and_cpu_time(tmp_path):
    (tmp_path / "sitecustomize.py").write_text(MARKER)
    marks = tmp_path / "marks.tsv"
    code = "import os, functions_framework.aio, gunicorn.arbiter, functions_framework.aio\nos.fork() or os._exit(0)"
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}:{ROOT}", "STARTUP_MARKS": str(marks),
           "STARTUP_SPAWNED": repr(time.time())}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)
    time.sleep(0.2)  # the forked child notes its mark as it starts
    noted = [line.split("\t") for line in marks.read_text().splitlines()]
    assert [phase for phase, _, _ in noted] == ["interpreter up", "function import begins", "gunicorn starts",
                                                "worker forked"]
    walls = [float(wall) for _, wall, _ in noted]
    assert walls == sorted(walls) and all(float(cpu) >= 0 for _, _, cpu in noted)


def test_phases_are_the_median_of_each_interval_between_marks():
    def start(*walls):
        return {mark: (wall, 0.0) for (_, mark), wall in zip(PHASES, walls)}

    assert phases([start(10, 100, 120, 150, 170), start(20, 120, 150, 170, 200), start(30, 90, 95, 125, 130)]) == \
        [20, 90, 20, 30, 20]
