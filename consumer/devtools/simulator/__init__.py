"""The VOD simulator over HTTP: ``app.py`` serves ``consumer.testing``'s in-memory VOD
behind the gateway's checks and injected faults; ``command.py`` is ``simulate-vod``."""
