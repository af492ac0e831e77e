# syntax=docker/dockerfile:1.7
#
# auto-code container image.
#
#   docker build -t auto-code:latest .        (or: docker compose -f compose/auto-code.yml build)
#
# What is inside, and what is deliberately not:
# - Python 3.11 (the version the project is developed and tested on) with the locked dependencies,
#   installed by `uv sync --frozen --no-dev` from uv.lock: the image gets exactly what CI tested.
# - The Claude Code CLI comes BUNDLED inside the claude-agent-sdk wheel
#   (claude_agent_sdk/_bundled/claude, a self-contained binary): there is NO Node.js, NO npm and NO
#   separate CLI install here. One CLI, pinned by uv.lock through the SDK version.
# - git (the workspace service drives it), ca-certificates (https clones, GitHub/Anthropic/Jira APIs),
#   tini (PID 1: forwards SIGTERM to uvicorn and reaps the CLI's and git's child processes),
#   util-linux for setpriv (drops from root to the service user; see ENTRYPOINT),
#   bubblewrap (`bwrap`): every process the ticket can influence (the Claude Code CLI, the
#   setup/lint/test commands) starts inside it (app's sandbox: user, mount, PID, net, IPC, UTS
#   namespaces). Its run-time needs are libcap2 and libselinux1 (its package dependencies, already
#   in the base) and a container that permits unprivileged user namespaces: compose/auto-code.yml
#   (seccomp, AppArmor, system paths) gives exactly that. bookworm installs /usr/bin/bwrap mode 0755,
#   NOT setuid: it relies on user namespaces, so `no-new-privileges` does not get in its way. The
#   RUN below asserts both (a setuid bwrap would be a root-owned attack surface for the agent).
# - No curl: the HEALTHCHECK uses the Python already in the image.
# - A non-root user `autocode` (uid 10001) runs the service: the CLI refuses bypassPermissions as
#   root, and the agent should not own the image anyway. The virtualenv stays root-owned, so the
#   agent cannot rewrite the service's own code.
# - PID 1 (tini) runs as ROOT and setpriv starts the service as 10001. Why: the agent's code runs as
#   the service's uid, and every process keeps its initial environment block (the secrets from
#   env_file) readable in /proc/<pid>/environ by its own uid. tini's copy is then root-owned; the
#   service's own copy is closed by app/hardening.py (non-dumpable). Hence no USER instruction: it
#   would make tini 10001 and leave /proc/1/environ readable to the agent. Consequence:
#   `docker exec` runs as root unless given `-u autocode` (deployment-plan.md).
#
# The image build is not exercised by CI (no Docker engine there); tests/test_shipping.py checks this
# file's shape and validates compose/auto-code.yml with the compose client.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.8

# --- uv, pinned (the same version the lock was written with) ------------------------------------
FROM ${UV_IMAGE} AS uv

# --- builder: resolve nothing, install exactly uv.lock into /app/.venv --------------------------
FROM ${PYTHON_IMAGE} AS builder
COPY --from=uv /uv /usr/local/bin/uv
# Use the image's interpreter (never download one), so the venv's python symlink is valid in the
# runtime stage, which is built FROM the same image. Byte-compile now: the runtime venv is read-only.
ENV UV_PYTHON_DOWNLOADS=never \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /src

# Dependencies first (own layer: only a lock change rebuilds it), then the project itself.
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-project

# README.md is the package's `readme` (hatchling needs it to build the wheel).
COPY README.md ./
COPY app ./app
# --no-editable: the app is installed into site-packages, so the runtime stage needs only the venv.
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable

# --- runtime ---------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

# Extra Debian packages for the TARGET repository's SETUP/LINT/TEST commands, e.g.
#   docker build --build-arg EXTRA_APT_PACKAGES="nodejs npm" .
# Empty by default: the service itself needs none of them.
ARG EXTRA_APT_PACKAGES=""
# Not version-pinned: bookworm point releases replace package versions (security fixes), so a pin
# would break rebuilds; the base image tag and uv.lock pin what the service depends on.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends git ca-certificates tini util-linux bubblewrap \
       ${EXTRA_APT_PACKAGES} \
    && rm -rf /var/lib/apt/lists/* \
    && test -x /usr/bin/tini && test -x /usr/bin/setpriv \
    && test -x /usr/bin/bwrap && test ! -u /usr/bin/bwrap

# The service user. /workspace is created and chowned BEFORE the VOLUME line, so a fresh named
# volume is initialised with this ownership.
RUN groupadd --system --gid 10001 autocode \
    && useradd --system --uid 10001 --gid 10001 --home-dir /home/autocode --create-home \
       --shell /usr/sbin/nologin autocode \
    && mkdir -p /workspace \
    && chown autocode:autocode /workspace \
    && chmod 0750 /workspace

COPY --from=builder /app/.venv /app/.venv

# NODE_ENV=production turns on the service's fail-fast configuration check (app/config.py):
# the container refuses to start with missing secrets or .env.example placeholders.
# CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 stops the CLI's telemetry and update lookups.
ENV PATH="/app/.venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/home/autocode \
    NODE_ENV=production \
    CLAUDE_CODE_API_PORT=3001 \
    WORKSPACE_DIR=/workspace \
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1

# WORKSPACE_DIR: the shared clone, the worktrees, the SQLite database (auto-code.sqlite), the CLI's
# transcripts (claude-config/) and local PR records. Keep it on a volume: runs resume from it.
VOLUME ["/workspace"]
WORKDIR /app
# No USER here on purpose (see the header): the ENTRYPOINT drops to 10001:10001 after tini starts.

# Documentation only: nothing is published. In production the cloudflared container reaches
# http://auto-code:3001 over the compose network.
EXPOSE 3001

# Runs as root (like docker exec) and touches only the network. urlopen raises on a refused
# connection, a timeout or any non-2xx answer -> exit 1 -> unhealthy.
HEALTHCHECK --interval=30s --timeout=5s --start-period=40s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('CLAUDE_CODE_API_PORT', '3001'), timeout=4)"]

# tini (root, PID 1) -> setpriv -> exec of the CMD as uid/gid 10001 with autocode's groups. setpriv
# keeps the environment (HOME=/home/autocode, the secrets) and execs, so the service is tini's direct
# child and gets its SIGTERM. Root here needs CAP_SETUID/CAP_SETGID (compose/auto-code.yml cap_add).
# `docker run <image> <cmd>` also runs <cmd> as 10001.
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/bin/setpriv", "--reuid=10001", "--regid=10001", "--init-groups", "--"]
CMD ["auto-code", "serve"]
