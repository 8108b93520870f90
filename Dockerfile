# Ausweg: small image, non-root, data in a volume.
FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    AUSWEG_DATA_DIR=/data
WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY handlers ./handlers
COPY storage ./storage
COPY config ./config
RUN pip install . && useradd --system --uid 10001 --home /data ausweg \
    && mkdir -p /data && chown ausweg /data && chmod 700 /data
USER ausweg
VOLUME ["/data"]
# Ready only once a platform is connected; /data/health says what is missing.
HEALTHCHECK --interval=30s --start-period=120s CMD ["test", "-f", "/data/ready"]
ENTRYPOINT ["ausweg"]
CMD ["run"]
