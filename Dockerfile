# ccproxy-server (with the compiled Cython core) and every plugin under plugins/, built as wheels in a build stage and
# installed into a runtime stage that has no compiler. Two targets:
#   docker build -t ccproxy .                                 slim: Debian (the default, the last stage)
#   docker build --target alpine -t ccproxy:alpine .          alpine: musl
#   docker run --rm -p 127.0.0.1:11434:11434 -e OPENAI_API_KEY=sk-... -e CCPROXY_API_KEYS=client-key-1 ccproxy
# BASE_IMAGE / ALPINE_BASE_IMAGE pick the Python base images (any image with python3 >= 3.11 and its venv module);
# containers/build-image.sh builds the slim target without a Docker daemon on a locally made base.
# Keys, ALLOWED_HOSTS, compose and the proof: docs/containers.md.
ARG BASE_IMAGE=python:3.12-slim-bookworm
ARG ALPINE_BASE_IMAGE=python:3.12-alpine

# ---------------------------------------------------------------- alpine (musl) ------------------------------------
FROM ${ALPINE_BASE_IMAGE} AS alpine-build
RUN apk add --no-cache build-base
# pip reaches PyPI here; --build-arg PIP_INDEX_URL=... for a mirror, PIP_CERT=... for a TLS-intercepting proxy's CA.
ARG PIP_INDEX_URL=https://pypi.org/simple
ARG PIP_CERT=
WORKDIR /src
COPY . .
RUN sh containers/build-wheels.sh /wheels

FROM ${ALPINE_BASE_IMAGE} AS alpine
# /app is the working directory (plugins.toml, .env and log files are looked for there) and the only one it may write.
RUN addgroup -g 10001 ccproxy \
    && adduser -D -H -u 10001 -G ccproxy -h /app -s /sbin/nologin ccproxy \
    && mkdir /app && chown ccproxy:ccproxy /app
# The wheels are mounted, not copied: no layer keeps them.
RUN --mount=type=bind,from=alpine-build,source=/wheels,target=/wheels sh /wheels/install-wheels.sh /opt/ccproxy
WORKDIR /app
USER ccproxy
ENV PATH=/opt/ccproxy/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 HOST=0.0.0.0 PORT=11434
EXPOSE 11434
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/' % os.environ.get('PORT', '11434'), timeout=4)"]
ENTRYPOINT ["ccproxy"]
CMD ["serve"]

# ---------------------------------------------------------------- slim (Debian) ------------------------------------
FROM ${BASE_IMAGE} AS slim-build
# gcc for the Cython core; the Python headers come with the python:* images, a distribution's python3 needs python3-dev.
RUN set -eu; \
    packages="gcc libc6-dev"; \
    python3 -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(sysconfig.get_path("include") + "/Python.h"))' \
        || packages="$packages python3-dev"; \
    apt-get update; \
    apt-get install -y --no-install-recommends $packages; \
    rm -rf /var/lib/apt/lists/*
# pip reaches PyPI here; --build-arg PIP_INDEX_URL=... for a mirror, PIP_CERT=... for a TLS-intercepting proxy's CA.
ARG PIP_INDEX_URL=https://pypi.org/simple
ARG PIP_CERT=
WORKDIR /src
COPY . .
RUN sh containers/build-wheels.sh /wheels

FROM ${BASE_IMAGE} AS slim
# /app is the working directory (plugins.toml, .env and log files are looked for there) and the only one it may write.
RUN groupadd --gid 10001 ccproxy \
    && useradd --uid 10001 --gid ccproxy --home-dir /app --no-create-home --shell /usr/sbin/nologin ccproxy \
    && mkdir /app && chown ccproxy:ccproxy /app
# The wheels are mounted, not copied: no layer keeps them.
RUN --mount=type=bind,from=slim-build,source=/wheels,target=/wheels sh /wheels/install-wheels.sh /opt/ccproxy
WORKDIR /app
USER ccproxy
ENV PATH=/opt/ccproxy/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 HOST=0.0.0.0 PORT=11434
EXPOSE 11434
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/' % os.environ.get('PORT', '11434'), timeout=4)"]
ENTRYPOINT ["ccproxy"]
CMD ["serve"]
