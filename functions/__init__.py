from shared import startup

startup.importing()  # first thing a function's import runs: no collections until its endpoint decorator
