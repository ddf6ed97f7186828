"""The engine: fetch within bounds, run records by key, commit what is done.

loop.py        ``Engine``: flow control, fetch, admit, commit, rebalance, drain
work.py        a fetched record with its key and payload (``prepare`` is injected)
scheduling.py  per-key queues on a fixed pool of workers: one key at a time, in order
offsets.py     contiguous done prefix per partition -> what may be committed

It knows nothing of VOD, events, handlers or configuration files: what a record means
comes in through ``prepare``, ``due`` and ``process``.
"""
