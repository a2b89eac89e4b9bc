"""memetrade: real-time market data and trading for meme tokens."""

__version__ = "0.1.0"
