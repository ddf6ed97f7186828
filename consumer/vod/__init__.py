"""Huawei Cloud VOD as the cover handlers reach it: the production client and its guards.

signing.py   AK/SK request signing (SDK-HMAC-SHA256) and its verification
errors.py    VOD's error answers as a typed tree; ``classify``
models.py    request and response bodies (pydantic)
client.py    ``VodClient`` over the daemon's shared aiohttp session
api.py       ``VodApi``: what handlers may ask of VOD, whatever wraps the client
circuit.py   one systemic failure stops every call until a probe passes
quota.py     this replica's share of the tenant's quota, as a sliding window
gateway.py   ``GuardedVod``: the client behind the circuit, the quotas and a call cap

The simulator the tests and the demo talk to is dev machinery: ``consumer.testing``
(in memory) and ``consumer.devtools.simulator`` (over HTTP).
"""
