"""The ingest: VOD's HTTP notifications (SMN pushes, MFS callbacks) to the Kafka topic,
verified, deduplicated, bounded, answered 200 only once the broker acknowledged.

server.py   ``cover-consumer ingest``: the port, the producer's connection, signals
app.py      POST /smn, POST /mfs, /livez, /readyz, /metrics: one way for every request
smn.py      the SMN envelope and its RSA signature (pure)
certs.py    the keys SMN may sign with: pinned (Huawei's ships here), fetched by policy
confirm.py  SMN subscription confirmation: allowed hosts only, no redirects
mfs.py      the MFS callback's HMAC (pure)
forward.py  producing (acks=all, idempotent): one send per delivery, within the budget
dedup.py    delivery keys already produced, for a window
limits.py   requests at once, rate per source
refusal.py  why a request is refused: status, reason code, detail
metrics.py  ``cover_consumer_ingest_*``
"""
