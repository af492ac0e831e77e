#
# auto-code container image.
#
#   docker build -t auto-code:latest .        (or: docker compose -f compose/auto-code.yml build)
#
# Plain Dockerfile syntax: no `# syntax=` line (which makes BuildKit fetch a frontend image from Docker
# Hub at build time) and no BuildKit-only instruction (no RUN --mount, no heredocs, no COPY --link/
# --chmod), so the classic builder of a Docker CLI without buildx, BuildKit and podman/buildah all
# build it. `.ci/image-smoke` builds it with podman and runs it the way compose does.
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
#   would make tini 10001 and leave /proc/1/environ readable to the agent. Consequences:
#   `docker exec` runs as root unless given `-u autocode` (deployment-plan.md), and root tini needs
#   CAP_KILL to forward `docker stop`'s SIGTERM to a process of another uid (compose cap_add).
# - Nothing is written outside /workspace and /tmp at run time: the image runs with a read-only root
#   filesystem (compose `read_only: true`, /tmp a tmpfs).
#
# Base images: pinned by tag AND digest where the digest is known (python), by exact version tag
# otherwise (uv: its release tags are never rebuilt); deployment-plan.md §8 has the update routine.
# The build backend (hatchling) is pinned in pyproject.toml.

ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.8

# --- uv, pinned ----------------------------------------------------------------------------------
FROM ${UV_IMAGE} AS uv

# --- deps: exactly uv.lock's third-party packages in /app/.venv (no project) ----------------------
# Its own stage, so the runtime copies it as one layer that changes only when pyproject.toml or
# uv.lock does: a source change does not re-ship the ~510 MB of dependencies.
FROM ${PYTHON_IMAGE} AS deps
COPY --from=uv /uv /usr/local/bin/uv
# Use the image's interpreter (never download one), so the venv's python symlink is valid in the
# runtime stage, which is built FROM the same image. Byte-compile now: the runtime venv is read-only.
ENV UV_PYTHON_DOWNLOADS=never \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1 \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /src
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --no-install-project

# --- project: the app installed on top; only ITS files are kept, in /overlay ----------------------
FROM deps AS project
# README.md is the package's `readme` (hatchling needs it to build the wheel).
COPY README.md ./
COPY app ./app
# --no-editable: the app goes into site-packages. What the wheel installed is exactly what its RECORD
# lists; the build fails if that is ever more than the `app` package, its dist-info and the
# `auto-code` script, which are copied (with their bytecode) to /overlay at the same paths.
RUN uv sync --frozen --no-dev --no-editable \
    && site="$(/app/.venv/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')" \
    && record="$(echo "$site"/auto_code-*.dist-info/RECORD)" \
    && test -f "$record" \
    && ! sed 's/,.*//' "$record" \
         | grep -v -e '^app/' -e '^auto_code-[^/]*\.dist-info/' -e '^\.\./\.\./\.\./bin/auto-code$' \
    && mkdir -p "/overlay$site" /overlay/app/.venv/bin \
    && cp -a "$site/app" "$site"/auto_code-*.dist-info "/overlay$site/" \
    && cp -a /app/.venv/bin/auto-code /overlay/app/.venv/bin/

# --- runtime ---------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

# Extra Debian packages for the TARGET repository's SETUP/LINT/TEST commands, e.g.
#   docker build --build-arg EXTRA_APT_PACKAGES="nodejs npm" .
# Empty by default: the service itself needs none of them.
ARG EXTRA_APT_PACKAGES=""
# Not version-pinned: bookworm point releases replace package versions (security fixes), so a pin
# would break rebuilds; the base image digest and uv.lock pin what the service depends on.
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

# Two layers: the dependencies (changes with uv.lock only), then the project (a few hundred kB).
COPY --from=deps /app/.venv /app/.venv
COPY --from=project /overlay/ /

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
# connection, a timeout or any non-2xx answer -> exit 1 -> unhealthy. A 10 s interval: the first probe
# comes 10 s after start (compose adds start_interval: 1s, which the Dockerfile syntax of the classic
# builder and of podman cannot express); failures in the first 60 s do not count.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('CLAUDE_CODE_API_PORT', '3001'), timeout=4)"]

# tini (root, PID 1) -> setpriv -> exec of the CMD as uid/gid 10001 with autocode's groups and the
# no_new_privs flag (no setuid/setgid bit or file capability can raise it again, even in a plain
# `docker run` without no-new-privileges). setpriv keeps the environment (HOME=/home/autocode, the
# secrets) and execs, so the service is tini's direct child and gets its SIGTERM. Root here needs
# CAP_SETUID/CAP_SETGID, and CAP_KILL to forward signals (compose/auto-code.yml cap_add).
# `docker run <image> <cmd>` also runs <cmd> as 10001.
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/bin/setpriv", "--reuid=10001", "--regid=10001", "--init-groups", "--no-new-privs", "--"]
CMD ["auto-code", "serve"]
