# syntax=docker/dockerfile:1
# imaginebot on the official PyTorch CUDA runtime image: torch 2.7.1, CUDA 12.8, cuDNN 9 and Python 3.11 come with
# it. Its torch must satisfy the floor in pyproject.toml (transformers 5 turns PyTorch off below 2.6);
# tests/test_docker.py checks the tag against that floor. The digest pins the exact image.
FROM pytorch/pytorch:2.7.1-cuda12.8-cudnn9-runtime@sha256:c16f4c749e2d9e96878875cdf6cc45cddda1d1a36fddd371dd6f2360f1b6e2a2

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HOME=/models/huggingface \
    IMAGINE_DATA_DIR=/app/data \
    IMAGINE_CONFIG=/app/config/bot.toml \
    IMAGINEBOT_DOCKER=1

# The bot runs as uid:gid 1000:1000, never as root (reuse the base image's uid 1000 account if it has one).
RUN (getent group 1000 || groupadd --gid 1000 imagine) \
    && (getent passwd 1000 || useradd --uid 1000 --gid 1000 --create-home --home-dir /home/imagine \
        --shell /usr/sbin/nologin imagine)

WORKDIR /app
# The libraries first, pinned (docker/requirements.txt), so a change to the bot's code does not reinstall them.
COPY docker/requirements.txt /tmp/requirements.txt
RUN pip install --no-cache-dir --requirement /tmp/requirements.txt

COPY pyproject.toml README.md ./
COPY bot ./bot
COPY cogs ./cogs
COPY engine ./engine
COPY config ./config
COPY web ./web
# The same pins as constraints; then the build fails here, in one line, if the engine's libraries do not import.
RUN pip install --no-cache-dir --constraint /tmp/requirements.txt ".[quant]" \
    && python -m engine.import_failure \
    && mkdir -p /app/data /models/huggingface \
    && chown -R 1000:1000 /app/data /models

USER 1000:1000
VOLUME ["/app/data", "/models"]
# The web UI and APIs (web.port). compose.yaml publishes it on the host's 127.0.0.1 only and binds the server to
# the container's own interface (IMAGINE_WEB__HOST=0.0.0.0), so nothing outside the host reaches it without a proxy.
EXPOSE 7860
# SIGINT is Ctrl-C to Python: the bot closes Discord, the engine and the database cleanly (as PID 1 it would ignore
# a SIGTERM it installs no handler for, and be killed after the stop timeout).
STOPSIGNAL SIGINT
# Reads the heartbeat the running bot writes every 30 s: no torch, no Discord, well under a second.
HEALTHCHECK --interval=30s --timeout=10s --start-period=120s --retries=3 CMD ["python", "-m", "bot", "health"]
ENTRYPOINT ["python", "-m", "bot"]
# A configuration error is printed once and the container waits (unhealthy) instead of restarting in a loop.
CMD ["run", "--hold-on-config-error"]
