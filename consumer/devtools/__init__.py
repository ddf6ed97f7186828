"""Dev machinery, never imported by the daemon: needs the ``dev`` extra.

broker.py     an embedded Kafka-protocol broker (Tansu) for tests, demo and bench
harness.py    ``cover-consumer run`` as a child process, its JSON lines read back
simulator/    the VOD simulator over HTTP (``simulate-vod``)
demo/         ``make demo``
bench/        ``make bench``
mutation.py   ``make mutate``: mutmut's results per module against 90 % killed
"""
