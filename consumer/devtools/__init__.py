"""Development tools: the embedded broker, the demo and the benchmark (need the ``dev`` extra)."""
