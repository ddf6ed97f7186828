"""Redelivery: what happens to a record that cannot be settled now.

policy.py      which failures are transient, backoff with full jitter, the next tier
topology.py    the retry-tier, dead-letter and replay topic names
headers.py     a record's history in ``cc-*`` headers (``Trail``), due times
sidetopics.py  writes a record to a retry tier or the dead-letter topic
guard.py       the dead-letter guard: stop before a bad deploy fills the DLQ
topics.py      topics ensure: create the topics, keep the configs it owns
ops.py         operator tools: topics ensure, dlq list, dlq replay
"""
