"""Kafka, where records come from and go to.

source.py   the ``Source`` contract the engine reads through, and ``KafkaSource`` (aiokafka)
sink.py     the ``Sink`` contract side topics are written through, and ``KafkaSink``
options.py  aiokafka client options from the ``kafka`` settings
reading.py  a whole topic from its start, without a group (operator tools, demo, tests)
"""
