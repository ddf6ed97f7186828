"""The daemon as a service: its parts wired, its life, its health.

wiring.py  settings -> source, engine, pipeline, side topics, VOD behind its guards
daemon.py  start (waiting for the broker), run until a signal, drain, leave the group
health.py  /livez, /readyz, /metrics
"""
