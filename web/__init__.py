"""The web surface: the web UI, the native API (``/api/v1``), the A1111-compatible API (``/sdapi/v1``) and
``/metrics``, all on the application core's one door (:mod:`bot.core`), like the Discord cogs."""
