"""Discord features, one cog per feature. A cog parses, calls ``bot/``, and presents; rules live in ``bot/``."""
