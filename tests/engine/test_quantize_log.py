"""8-bit models: bitsandbytes' cast warning, logged on every layer call in bf16, is said once per engine."""

from __future__ import annotations

import logging

import pytest

from engine.memory import CAST_WARNING, OnceFilter, quantization_config


def test_the_cast_warning_passes_once_and_other_lines_always() -> None:
    """The first cast line passes, its repeats do not; any other message passes every time."""
    logger = logging.getLogger("tests.quantize_log")
    once = OnceFilter(CAST_WARNING)
    cast = logger.makeRecord(logger.name, logging.WARNING, __file__, 1, f"{CAST_WARNING} from bf16", None, None)
    other = logger.makeRecord(logger.name, logging.WARNING, __file__, 1, "something else", None, None)
    assert [once.filter(cast), once.filter(cast), once.filter(other), once.filter(other)] == [True, False, True, True]


def test_an_8bit_config_installs_the_filter_on_bitsandbytes_logger_once(caplog: pytest.LogCaptureFixture) -> None:
    """Building the 8-bit configuration twice leaves one filter, and 1000 cast lines log as one."""
    logger = logging.getLogger("bitsandbytes.autograd._functions")
    before = list(logger.filters)
    try:
        quantization_config("8bit")
        quantization_config("8bit")
        assert sum(isinstance(item, OnceFilter) for item in logger.filters) == 1
        with caplog.at_level(logging.WARNING, logger=logger.name):
            for _ in range(1000):
                logger.warning("%s from torch.bfloat16 to float16 during quantization", CAST_WARNING)
        assert sum(CAST_WARNING in record.getMessage() for record in caplog.records) == 1
    finally:
        logger.filters[:] = before
