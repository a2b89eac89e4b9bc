"""Asyncio orchestration: market data, the mock generator, backfill, fan-out hub."""
