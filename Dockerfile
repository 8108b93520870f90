# Ausweg: small non-root image. Data in the /data volume; directory and keys mounted
# read-only under /etc/ausweg; runs with a read-only root filesystem (--read-only --tmpfs /tmp).
# Secrets never enter a layer: only the code is copied (see .dockerignore); keys, tokens
# and passwords come from the mounted /etc/ausweg and the --env-file at run time.
# Build and run: docs/DEPLOY.md. tests/test_container.py runs the install and entry steps
# below in a clean virtualenv as an unprivileged user (base images cannot be pulled in CI).
FROM python:3.11-slim

# Settings the image fixes; config/ausweg.env.example leaves these to the image.
# The webhook listens on every interface inside the container (publish 8443 to a reverse
# proxy); the health endpoint stays on loopback for the HEALTHCHECK.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/data \
    TMPDIR=/tmp \
    MPLCONFIGDIR=/tmp/matplotlib \
    AUSWEG_ENV_FILE=/etc/ausweg/ausweg.env \
    AUSWEG_DATA_DIR=/data \
    AUSWEG_DIRECTORY_PATH=/etc/ausweg/directory.yaml \
    AUSWEG_CRYPTO__KEY_FILE=/etc/ausweg/keys.json \
    AUSWEG_TELEGRAM__WEBHOOK_LISTEN=0.0.0.0 \
    AUSWEG_TELEGRAM__WEBHOOK_PORT=8443 \
    AUSWEG_HEALTH__PORT=9090

WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY handlers ./handlers
COPY storage ./storage
COPY config ./config
# One layer: install, then the service user and its private data folder.
RUN pip install --no-compile . \
    && useradd --system --uid 10001 --user-group --home-dir /data --no-create-home \
       --shell /usr/sbin/nologin ausweg \
    && install -d -o ausweg -g ausweg -m 0700 /data

USER 10001:10001
VOLUME ["/data"]
# 8443: Telegram webhook (AUSWEG_TELEGRAM__MODE=webhook); 9090: health and metrics.
EXPOSE 8443 9090
# Alive = /healthz answers 200 on the health port (bot/health).
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import os,sys,urllib.request as u;p=os.environ.get('AUSWEG_HEALTH__PORT','9090');sys.exit(0 if u.urlopen(f'http://127.0.0.1:{p}/healthz',timeout=4).status==200 else 1)"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["ausweg"]
CMD ["run"]
