# rtserver: a small production image (no Anvil, no test tools). docs/deploy.md.
#   docker build -t rtserver .
#   docker run -d -p 8080:8080 -v rtserver-data:/var/lib/rtserver \
#     -e RTSERVER_SERVER_ADMIN_TOKEN=... -e RTSERVER_WEBHOOKS_SECRET_KEY=... rtserver
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY rtserver ./rtserver
RUN python -m venv /opt/rtserver \
    && /opt/rtserver/bin/pip install --no-cache-dir --disable-pip-version-check . \
    && find /opt/rtserver -name '__pycache__' -prune -exec rm -rf {} +

FROM python:3.11-slim
RUN useradd --system --uid 10001 --no-create-home --home-dir /var/lib/rtserver \
        --shell /usr/sbin/nologin rtserver \
    && mkdir -p /var/lib/rtserver \
    && chown rtserver:rtserver /var/lib/rtserver \
    && chmod 0700 /var/lib/rtserver
COPY --from=build /opt/rtserver /opt/rtserver
ENV PATH=/opt/rtserver/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    RTSERVER_SERVER_BIND=0.0.0.0:8080 \
    RTSERVER_SERVER_DATA_DIR=/var/lib/rtserver \
    RTSERVER_SERVER_LOG_FORMAT=json
USER rtserver
VOLUME ["/var/lib/rtserver"]
EXPOSE 8080
# /healthz answers while the process serves; /readyz also checks the chains and the disk.
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status != 200)"]
# SIGTERM: sockets close with 1001, committed work flushes, exit 0 within server.shutdown_grace.
STOPSIGNAL SIGTERM
ENTRYPOINT ["rtserver"]
CMD ["serve"]
