# citywarn API (and, with another command, the consumer) for production-like use.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    NUMBA_CACHE_DIR=/srv/citywarn/var/numba
WORKDIR /srv/citywarn

COPY pyproject.toml README.md constraints.txt ./
COPY app ./app
COPY ingest ./ingest
COPY store ./store
COPY models ./models
COPY alerts ./alerts
COPY config ./config
COPY bench ./bench
# The detector's kernel is compiled once here (seconds), so a container starts ready to score.
RUN pip install -c constraints.txt . && useradd --system --uid 10001 --home-dir /srv/citywarn citywarn \
    && python -c "from models.detectors.record_ensemble import RecordEnsembleDetector as D; D.warm_up()" \
    && mkdir -p /srv/citywarn/var && chown -R citywarn /srv/citywarn/var

USER citywarn
EXPOSE 8000
CMD ["citywarn", "serve", "--host", "0.0.0.0", "--port", "8000"]
