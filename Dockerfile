# syntax=docker/dockerfile:1
#
# One image for every SendPromptly process; the command picks which one runs:
#   sendpromptly migrate | topics ensure | gateway | agents | sink <name>
# e.g. `docker run --rm sendpromptly:local gateway`. Configuration comes only from SENDPROMPTLY_*
# environment variables (or SENDPROMPTLY_*_FILE for secrets) at run time: nothing secret is baked in.

ARG PYTHON_IMAGE=python:3.11-slim

# --- build: a self-contained virtualenv in /opt/venv ----------------------------------------------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

# A C toolchain, in this stage only: faust-streaming publishes no aarch64 wheel, so on arm64
# (e.g. Apple silicon laptops) pip builds it, with its C speedups, from the source distribution.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src

# Dependencies first, in their own layer: exactly the versions and hashes pinned in
# requirements/runtime.txt (`make lock` writes it from pyproject.toml's [project].dependencies; no
# test or dev extras), so every build installs the same thing. A code change rebuilds only the
# last layer below.
COPY requirements/runtime.txt /tmp/requirements.txt
RUN pip install --upgrade pip \
    && pip install --require-hashes -r /tmp/requirements.txt

# The project itself, as a regular (non-editable) install: the packages, the migrations shipped as
# package data and the `sendpromptly` console script all land in /opt/venv. --no-deps: its
# dependencies are the pinned ones above, never resolved again.
COPY . .
RUN pip install --no-deps . \
    && sendpromptly --help >/dev/null

# --- runtime ------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

# tini as PID 1: forwards SIGTERM to the process and reaps children. The long-running processes
# handle SIGTERM themselves, but a Python PID 1 ignores signals it has no handler for, so without
# it the one-shot commands (migrate, topics ensure) could only be stopped by SIGKILL.
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/*

# A fixed, unprivileged uid/gid so Kubernetes' runAsUser/fsGroup and volume ownership line up.
ARG APP_UID=10001
RUN groupadd --gid ${APP_UID} sendpromptly \
    && useradd --uid ${APP_UID} --gid sendpromptly --no-log-init --create-home \
       --home-dir /home/sendpromptly --shell /usr/sbin/nologin sendpromptly \
    && mkdir -p /var/lib/sendpromptly/agents /var/lib/sendpromptly/keys /var/lib/sendpromptly/mail \
    && chown -R sendpromptly:sendpromptly /var/lib/sendpromptly

COPY --from=build /opt/venv /opt/venv

# Container defaults that differ from the laptop defaults in common/config.py:
#  - HTTP_HOST 0.0.0.0: 127.0.0.1 would be unreachable from outside the container (probes, Service).
#  - AGENTS_DATADIR: an absolute path, owned by the app user, that compose and Kubernetes mount
#    a volume on (the default `.run/agents` is relative to the working directory).
# (/var/lib/sendpromptly/keys is where docker-compose.yml keeps the keyrings it generates for the
# local stack, /var/lib/sendpromptly/mail its mail catcher's messages; Kubernetes mounts a Secret
# elsewhere instead. A directory that exists in the image
# is what makes a fresh named volume mounted on it writable by the app user.)
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SENDPROMPTLY_HTTP_HOST=0.0.0.0 \
    SENDPROMPTLY_AGENTS_DATADIR=/var/lib/sendpromptly/agents

WORKDIR /home/sendpromptly
USER ${APP_UID}:${APP_UID}

# gateway, agents web, sink metrics (defaults of SENDPROMPTLY_HTTP_PORT, _AGENTS_WEB_PORT,
# _SINK_METRICS_PORT).
EXPOSE 8080 8081 8082

# No HEALTHCHECK: Kubernetes probes /healthz and /readyz, and compose defines its own checks.
ENTRYPOINT ["/usr/bin/tini", "--", "sendpromptly"]
CMD ["--help"]
