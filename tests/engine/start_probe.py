"""Start an engine through the bot's supervisor in a process of its own and say, as one JSON line, how it went.

``python -m tests.engine.start_probe MODEL SOURCE FAMILY DATA_DIR START_TIMEOUT_S [RETRY_TIMEOUT_S]``

The supervisor waits for the engine as the bot does (:meth:`EngineSupervisor.wait_ready`); the line gives the
error that ended the wait (the names of its class and of its bases, and its message; or null), and with
``RETRY_TIMEOUT_S`` the same supervisor then waits again under that timeout, as an owner who raised
``engine_start_timeout_s`` would. It also gives the supervisor's own log lines about the engine it ended with.
Tests of engines that cannot start run it ahead of themselves (:mod:`tests.ahead`): each such engine spends
seconds importing torch and diffusers.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys

from bot.running.engine_supervisor import EngineSupervisor
from engine.protocol import EngineConfig


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


async def probe(config: EngineConfig, start_timeout_s: float, retry_timeout_s: float | None) -> dict[str, object]:
    lines = _Lines()
    logger = logging.getLogger("bot.running.engine_host")
    logger.addHandler(lines)
    logger.setLevel(logging.INFO)
    supervisor = EngineSupervisor(config, start_timeout_s=start_timeout_s)
    result: dict[str, object] = {"error": None, "message": None}
    try:
        try:
            await supervisor.wait_ready()
        except Exception as error:  # reported to the test, which decides what was expected
            result.update(error=[cls.__name__ for cls in type(error).__mro__], message=str(error))
        if retry_timeout_s is not None:
            supervisor.start_timeout_s = retry_timeout_s
            await supervisor.wait_ready()
            result["ready"] = supervisor.ready is not None and supervisor.starting is None
        prefix = f"engine {supervisor.pid}: "
        result["lines"] = [line for line in lines.lines if line.startswith(prefix)]
        result["prefix"] = prefix
    finally:
        supervisor.stop()
    return result


def main() -> None:
    model, source, family, data_dir, start_timeout_s, *retry = sys.argv[1:]
    config = EngineConfig(model_name=model, model_source=source, family=family, data_dir=data_dir)
    result = asyncio.run(probe(config, float(start_timeout_s), float(retry[0]) if retry else None))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
