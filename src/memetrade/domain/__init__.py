"""The pure core: exact numbers, trades, intervals and candles. No I/O, no clock reads."""
