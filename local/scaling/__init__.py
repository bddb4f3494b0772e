"""`make up SCALING=knative`: the local gateway as Knative's activator and autoscaler, per function.

settings.py  what scales how: the route table's target and containerConcurrency, windows and caps from SCALING_*
windows.py   the concurrency the gateway observes, averaged per second and over the stable and panic windows
replicas.py  one replica: a functions-framework process on free ports, started and stopped through local.processes
revision.py  one function: its replicas, the requests it holds, least-in-flight balancing, one KPA decision
scaler.py    every function: the 2-second tick, the global replica cap, /_local/scaling and its Prometheus metrics
"""
