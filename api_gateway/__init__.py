"""The HTTP API (aiohttp): ingest for apps, operator API for people and the CLI."""
