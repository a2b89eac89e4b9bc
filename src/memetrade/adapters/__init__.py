"""Adapters: connect the pure core to the world (storage, bus, clocks, feeds).

Each kind implements one small Protocol from ``memetrade.ports``; importing a module here never
connects to anything, the composition root does that.
"""
