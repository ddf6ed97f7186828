"""``make bench``: throughput and memory figures, each beside a baseline of the same run.

__main__.py  the scenarios and the table (``python -m consumer.devtools.bench``)
produce.py   a scenario's records
bare.py      the baseline loops: the ceiling (json.loads) and the floor (decode + line)
daemon.py    ``cover-consumer run`` sampled until every record has its outcome line
handlers.py  the handlers the scenarios route to
common.py    the run's broker and scratch space, its errors and figures
"""
