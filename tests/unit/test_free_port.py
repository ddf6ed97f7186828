"""consumer.devtools.broker.free_port: ports for listeners the tests start themselves."""

from __future__ import annotations

import socket

from consumer.devtools.broker import _first_ephemeral_port, free_port


def test_ports_lie_below_the_range_outgoing_connections_take_theirs_from() -> None:
    ports = [free_port() for _ in range(50)]

    assert all(1024 <= port < _first_ephemeral_port() for port in ports)


def test_a_port_is_handed_out_once_and_can_be_listened_on() -> None:
    ports = [free_port() for _ in range(50)]

    assert len(set(ports)) == len(ports)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", ports[-1]))
        sock.listen()
