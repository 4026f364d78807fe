# The server image: `ige serve` with the roles of IGE_ROLES (api, stream, worker; default all
# three). Redis and the database are outside (REDIS_URL, DATABASE_URL); keep Redis with
# `appendonly yes` and `appendfsync always`. Built and started by `make image-test`.
#
#   docker build -t ige .                      # or: podman build --format docker -t ige .
#   docker run --read-only -p 8000:8000 -e REDIS_URL=... -e IGE_ADMIN_TOKEN=... \
#              -e IGE_SECRET_KEY=... -e IGE_ROLES=api ige
#
# BASE: a Debian image with Python >= 3.11, its venv module and ca-certificates, the same in
# both stages (the virtual environment is copied from the first to the second and points at
# BASE's Python).
ARG BASE=python:3.11-slim-bookworm

# ---------------------------------------------------------------------------- build stage
FROM ${BASE} AS build
# pip trusts the system's certificate store, as apt does (a proxy's CA added to the base is
# trusted by both)
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    PYTHONDONTWRITEBYTECODE=1
# A compiler for any dependency without a wheel for this platform (none on x86_64 today). The
# Python headers come with python:*-slim; Debian's own python3 has them in python3-dev.
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev make \
 && if [ ! -e "$(python3 -c 'import sysconfig; print(sysconfig.get_path("include"))')/Python.h" ]; \
    then apt-get install -y --no-install-recommends python3-dev; fi \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -m venv /opt/ige

# The dependencies first, from pyproject.toml alone: this layer is rebuilt only when they
# change; pip's downloads stay in a build cache, never in a layer.
COPY pyproject.toml /src/
RUN --mount=type=cache,target=/root/.cache/pip \
    python3 -c 'import tomllib; \
project = tomllib.load(open("/src/pyproject.toml", "rb"))["project"]; \
print("\n".join(project["dependencies"]))' > /tmp/requirements.txt \
 && /opt/ige/bin/pip install -q -r /tmp/requirements.txt

# Then the project itself (what pyproject.toml packages; .dockerignore keeps the rest out).
COPY . /src
RUN --mount=type=cache,target=/root/.cache/pip \
    /opt/ige/bin/pip install -q --no-deps /src \
 && /opt/ige/bin/pip uninstall -q -y pip \
 && install -m 0755 /src/deploy/entrypoint.sh /opt/ige/bin/ige-entrypoint

# ---------------------------------------------------------------------------- final stage
FROM ${BASE}
# /var/lib/ige: the SQLite file when DATABASE_URL names one there (the default below);
# /tmp: scratch, the metrics of the server's processes. Nothing else is written: the image
# runs with a read-only root filesystem.
RUN groupadd --system --gid 10001 ige \
 && useradd --system --uid 10001 --gid ige --no-create-home --home-dir /var/lib/ige \
      --shell /usr/sbin/nologin ige \
 && install -d -o ige -g ige -m 0750 /var/lib/ige
COPY --from=build /opt/ige /opt/ige
ENV PATH=/opt/ige/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DATABASE_URL=sqlite:////var/lib/ige/ige.db
VOLUME ["/var/lib/ige", "/tmp"]
WORKDIR /var/lib/ige
USER 10001:10001
EXPOSE 8000
# liveness: the process answers; /readyz also checks Redis and the database
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 CMD ["python", "-c", \
  "import os, urllib.request as u; \
u.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('IGE_PORT', '8000'), timeout=2)"]
ENTRYPOINT ["ige-entrypoint"]
