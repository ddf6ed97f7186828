"""``make demo``: the whole loop on embedded defaults, well within a minute.

Starts Tansu, the VOD simulator (in this process) and ``cover-consumer ingest``, seeds
about 600 assets and pushes a thousand notifications about them to the ingest as VOD
would (SMN pushes signed with a certificate the simulator made, MFS callbacks with an
HMAC key), with forgeries, redeliveries and subscription confirmations among them, and
writes a few records straight to the topic (malformed ones, CloudEvents). Then it runs
``cover-consumer run`` with no config file (only the broker, VOD's address and keys, and
the time scale are set, by environment), waits until every record on the topic has its
final outcome, stops both with SIGTERM and prints what happened. Then it checks its own
claims and exits 1, naming the check, when one fails.

Time is scaled down, not the logic: the simulator counts its quotas over 6 s instead
of a minute (the daemon is told the same, so it paces itself to 100 writes per 6 s),
snapshot tasks take 0.5 s and a fifth of them fail, retry tiers wait 2 s and 5 s, and
a regenerated cover is checked 1.5 s after asking for it. Like VOD, the simulator
announces every finished snapshot task (``thumbnailComplete``, and ``coverComplete`` when
the task set a cover), by SMN and MFS in turn, through the ingest; the daemon consumes
those too.

seed.py      the assets, and the notifications about them shaped like VOD's traffic
announce.py  the simulator's side: pushing to the ingest, what came back; cover origins
run.py       broker, simulator, ingest, daemon; waiting for every outcome; the stop
follow.py    the daemon's and the ingest's lines, tallied as they come
report.py    what happened, and the demo's checks of its own claims
"""

from consumer.devtools.demo.run import main

__all__ = ["main"]
