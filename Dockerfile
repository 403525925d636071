# citywarn API (and, with another command, the consumer) for production-like use.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /srv/citywarn

COPY pyproject.toml README.md ./
COPY app ./app
COPY ingest ./ingest
COPY store ./store
COPY models ./models
COPY alerts ./alerts
COPY config ./config
COPY bench ./bench
RUN pip install . && useradd --system --uid 10001 --home-dir /srv/citywarn citywarn \
    && mkdir -p /srv/citywarn/var && chown citywarn /srv/citywarn/var

USER citywarn
EXPOSE 8000
CMD ["citywarn", "serve", "--host", "0.0.0.0", "--port", "8000"]
