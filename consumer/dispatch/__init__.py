"""Dispatch: from a record's payload to its one outcome.

intake.py    the engine's ``prepare``: record bytes -> event (or why not) and its asset key
routing.py   event -> first matching route -> its handlers, resolved by name
decision.py  what a handler's outcome means next: settle, next handler, tier, dead letter
pipeline.py  carries the decisions out: handler calls, quick retries, side topics, the line
watchdog.py  one timer for every handler call's time limit
"""
