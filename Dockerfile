# imaginebot on an official PyTorch CUDA runtime image (torch and CUDA come with the base image).
FROM pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    HF_HOME=/models/huggingface \
    IMAGINE_DATA_DIR=/app/data

RUN groupadd --system --gid 1000 imagine \
    && useradd --system --uid 1000 --gid imagine --home-dir /app --shell /usr/sbin/nologin imagine

WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY cogs ./cogs
COPY engine ./engine
COPY config ./config
# torch is already in the image; pip keeps it because it satisfies the project's range.
RUN pip install ".[quant]" \
    && mkdir -p /app/data /models \
    && chown -R imagine:imagine /app/data /models

USER imagine
VOLUME ["/app/data", "/models"]
ENTRYPOINT ["python", "-m", "bot"]
CMD ["run"]
