"""Huawei Cloud VOD: what the cover handlers need to talk to it, and a simulator of it.

signing.py    AK/SK request signing (SDK-HMAC-SHA256) and its verification
errors.py     VOD's error answers as a typed tree; ``classify``
models.py     request and response bodies (pydantic)
client.py     ``VodClient`` over the daemon's shared aiohttp session
simstate.py   the simulator's assets, keys, quotas, faults and counters
simulator.py  the simulator's HTTP application (tests, demo)
"""
