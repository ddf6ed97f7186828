"""``make demo``: the whole loop on embedded defaults, well within a minute.

Starts Tansu and the VOD simulator (in this process), seeds about 600 assets and a
thousand events shaped like VOD's traffic, runs ``cover-consumer run`` with no config
file (only the broker, VOD's address and keys, and the time scale are set, by
environment), waits until every record has its final outcome, stops the daemon with
SIGTERM and prints what happened. Then it checks its own claims and exits 1, naming
the check, when one fails.

Time is scaled down, not the logic: the simulator counts its quotas over 6 s instead
of a minute (the daemon is told the same, so it paces itself to 100 writes per 6 s),
snapshot tasks take 0.5 s and a fifth of them fail, retry tiers wait 2 s and 5 s, and
a regenerated cover is checked 1.5 s after asking for it. Like VOD, the simulator
announces every finished snapshot task on the topic (``thumbnailComplete``, and
``coverComplete`` when the task set a cover); the daemon consumes those too.

seed.py      the assets, and the events about them shaped like VOD's traffic
announce.py  the simulator's side: finished snapshot tasks announced on the topic
run.py       broker, simulator, daemon; waiting for every outcome; the stop
report.py    what happened, and the demo's checks of its own claims
"""

from consumer.devtools.demo.run import main

__all__ = ["main"]
