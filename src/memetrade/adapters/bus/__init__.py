"""Bus adapters: in-process (the embedded default) and NATS JetStream (``BUS_URL``)."""

from memetrade.adapters.bus.local import LocalBus
from memetrade.ports import Bus

__all__ = ["bus_from_url"]


def bus_from_url(url: str | None) -> Bus:
    """The bus ``url`` names: None is the in-process bus; ``nats://`` is NATS JetStream,
    imported only then (nats-py is not needed otherwise)."""
    if url is None:
        return LocalBus()
    from memetrade.adapters.bus.nats import NatsBus

    return NatsBus(url)
