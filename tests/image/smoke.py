"""Image smoke test: build the Dockerfile and run the image the way compose/auto-code.yml runs it.

Driven by `.ci/image-smoke` (which finds the engine); run directly with
  uv run python tests/image/smoke.py --engine podman [--image NAME] [--no-build] [--build-arg K=V ...]

Steps (each timed, each a hard failure):
  build      the project's Dockerfile, unchanged (build args only override the base images when local
             stand-ins are used)
  image      no USER, tini entrypoint, HEALTHCHECK = the compose file's health test; size reported
  plain      `run IMAGE` without compose's options: the default command refuses to start without
             secrets (exit 2, one `auto-code:` line on stderr), setpriv's no_new_privs is set
  demo       `auto-code demo` with the compose restrictions: the whole pipeline offline
  seed       a throwaway volume with a bare repository (REPO_URL is its local path) and a script
             for the scripted editor
  serve      the service with the compose restrictions, mapped to engine flags from the compose file
             itself (an option this script cannot map fails it), a throwaway volume and no network;
             NODE_ENV=development (CLAUDE_CLIENT=mock is refused in production) with SANDBOX=bwrap
             and SANDBOX_SELF_CHECK=true, so the sandbox is proven inside the container
  checks     PID 1 tini as root, the service as uid 10001 with no_new_privs; /proc/1/environ not
             readable by 10001; root filesystem read-only, /tmp writable; /health; the HEALTHCHECK
  webhook    one delivery; the run finishes inside the container (runs API with OPERATOR_TOKEN); its
             PR record exists; `auto-code runs` (the operator CLI) lists it
  stop       a second delivery whose lint step is slow; `stop` while that step runs: exit 143/0 (not
             SIGKILL) well before the timeout, `service_stopped` logged, no tini forwarding error
  restart    `start` again (same hostname = EXECUTOR_ID, same volume): the run is resumed (or was
             drained) and ends succeeded with exactly one PR record for its branch
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose" / "auto-code.yml"
SERVICE_UID = 10001
HOSTNAME = "auto-code-smoke"
SLOW_LINT_S = 20
STOP_TIMEOUT_S = 60
ONE_OFF = ("run", "--rm", "--no-healthcheck", "--network", "none")  # a throwaway container

# Keys of the compose app service, and how each one is honoured here. A key not listed makes the
# smoke test fail: a new restriction must be mapped (or consciously listed as not applicable).
NOT_APPLICABLE = {
    "build": "the image is built by this script",
    "image": "the image is the one built here",
    "env_file": "the smoke test's own development configuration",
    "environment": "applied (WORKSPACE_DIR)",
    "volumes": "a throwaway volume at /workspace",
    "restart": "not wanted: stop/start are driven here",
    "logging": "engine default",
    "stop_grace_period": f"stop -t {STOP_TIMEOUT_S}",
    "hostname": f"fixed {HOSTNAME} (same EXECUTOR_ID across stop/start, like compose's)",
}
MAPPED = {"cap_drop", "cap_add", "security_opt", "read_only", "tmpfs", "mem_limit", "memswap_limit",
          "pids_limit", "cpus", "healthcheck"}

T0 = time.monotonic()
TIMINGS: list[tuple[str, float]] = []
NOTES: list[str] = []


def say(msg: str) -> None:
    print(f"image-smoke [{time.monotonic() - T0:6.1f}s] {msg}", flush=True)


class SmokeFailure(Exception):
    pass


def check(cond: object, msg: str) -> None:
    if not cond:
        raise SmokeFailure(msg)


class Step:
    def __init__(self, name: str) -> None:
        self.name = name

    def __enter__(self) -> Step:
        self.start = time.monotonic()
        say(f"{self.name} ...")
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        took = time.monotonic() - self.start
        if exc_type is None:
            TIMINGS.append((self.name, took))
            say(f"{self.name} ok ({took:.1f} s)")


class Engine:
    def __init__(self, argv0: str) -> None:
        self.argv0 = argv0
        self.podman = os.path.basename(argv0).startswith("podman")

    def run(self, *args: str, timeout: float = 120, check_rc: bool = True, input_text: str | None = None,
            quiet: bool = False) -> subprocess.CompletedProcess[str]:
        argv = [self.argv0, *args]
        if not quiet:
            say("$ " + " ".join(shlex.quote(a) if len(a) < 120 else shlex.quote(a[:117] + "...")
                                for a in argv))
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, input=input_text,
                              check=False)
        if check_rc and done.returncode != 0:
            raise SmokeFailure(f"`{' '.join(argv[:4])} ...` exited {done.returncode}:\n"
                               f"{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
        return done

    def exec(self, ctr: str, *argv: str, user: str | None = None,
             **kw: Any) -> subprocess.CompletedProcess[str]:
        opts = ["-u", user] if user else []
        return self.run("exec", *opts, ctr, *argv, **kw)


# ----- compose -> engine flags ----------------------------------------------------------------------
def apparmor_enabled() -> bool:
    try:
        return Path("/sys/module/apparmor/parameters/enabled").read_text().strip() == "Y"
    except OSError:
        return False


def compose_app() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))["services"]["auto-code"]


def compose_flags(engine: Engine, app: dict[str, Any]) -> list[str]:
    unknown = set(app) - MAPPED - set(NOT_APPLICABLE)
    check(not unknown, f"compose app service has keys this smoke test does not map: {sorted(unknown)}")
    flags: list[str] = []
    flags += [x for c in app.get("cap_drop", []) for x in ("--cap-drop", c)]
    flags += [x for c in app.get("cap_add", []) for x in ("--cap-add", c)]
    for opt in app.get("security_opt", []):
        key, _, value = opt.replace(":", "=", 1).partition("=")
        if key == "no-new-privileges":
            check(value in ("", "true"), opt)
            flags += ["--security-opt", "no-new-privileges"]
        elif key == "seccomp":
            flags += ["--security-opt", f"seccomp={COMPOSE.parent / value}"]
        elif key == "apparmor":
            if apparmor_enabled():
                profiles = Path("/sys/kernel/security/apparmor/profiles")
                loaded = profiles.exists() and value in profiles.read_text()
                check(loaded, f"AppArmor is enabled but profile {value} is not loaded "
                              "(deployment-plan.md §6 loads it)")
                flags += ["--security-opt", f"apparmor={value}"]
            else:
                NOTES.append(f"AppArmor not enabled on this host: security_opt {opt} not applied")
        elif key == "systempaths":
            flags += ["--security-opt", f"systempaths={value}"]
        else:
            raise SmokeFailure(f"security_opt {opt!r}: not mapped by the smoke test")
    if app.get("read_only"):
        flags += ["--read-only"]
        if engine.podman:  # podman adds /run, /tmp, /var/tmp tmpfs by default; Docker adds none
            flags += ["--read-only-tmpfs=false"]
    for mount in app.get("tmpfs", []):
        flags += ["--tmpfs", mount]
    for key, flag in (("mem_limit", "--memory"), ("memswap_limit", "--memory-swap"),
                      ("pids_limit", "--pids-limit"), ("cpus", "--cpus")):
        if key in app:
            flags += [flag, str(app[key])]
    hc = app.get("healthcheck") or {}
    for key, flag in (("interval", "--health-interval"), ("timeout", "--health-timeout"),
                      ("start_period", "--health-start-period"), ("retries", "--health-retries")):
        if key in hc:
            flags += [flag, str(hc[key])]
    if "start_interval" in hc:
        NOTES.append("healthcheck start_interval not applied (podman 4 has none): health is probed "
                     "explicitly below")
    for name, value in (app.get("environment") or {}).items():
        flags += ["-e", f"{name}={value}"]
    return flags


# ----- in-container helpers ------------------------------------------------------------------------
HTTP = r"""
import json, sys, urllib.request, urllib.error
method, url, headers, body = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]
req = urllib.request.Request(url, data=body.encode() if body else None, method=method, headers=headers)
try:
    with urllib.request.urlopen(req, timeout=10) as r:
        print(json.dumps({"status": r.status, "body": r.read().decode()}))
except urllib.error.HTTPError as e:
    print(json.dumps({"status": e.code, "body": e.read().decode()}))
"""

PROCS = r"""
import json, os
out = []
for pid in sorted((p for p in os.listdir("/proc") if p.isdigit()), key=int):
    try:
        status = open(f"/proc/{pid}/status").read()
        cmd = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
    except OSError:
        continue
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    out.append({"pid": int(pid), "uid": fields["Uid"].split(), "nnp": fields.get("NoNewPrivs", "").strip(),
                "caps": fields.get("CapEff", "").strip(), "cmd": [c.decode() for c in cmd if c]})
print(json.dumps(out))
"""


class Service:
    def __init__(self, engine: Engine, ctr: str, port: int, env: dict[str, str]) -> None:
        self.engine, self.ctr, self.port, self.env = engine, ctr, port, env

    def http(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
             quiet: bool = True) -> tuple[int, Any]:
        hdrs = dict(headers or {})
        data = ""
        if body is not None:
            data = json.dumps(body)
            hdrs["Content-Type"] = "application/json"
        done = self.engine.exec(self.ctr, "python", "-c", HTTP, method, f"http://127.0.0.1:{self.port}{path}",
                                json.dumps(hdrs), data, user=str(SERVICE_UID), quiet=quiet, check_rc=False)
        if done.returncode != 0:
            return 0, done.stderr.strip()[-300:]
        answer = json.loads(done.stdout)
        try:
            return answer["status"], json.loads(answer["body"])
        except ValueError:
            return answer["status"], answer["body"]

    def operator(self, path: str) -> Any:
        auth = {"Authorization": f"Bearer {self.env['OPERATOR_TOKEN']}"}
        status, body = self.http("GET", path, headers=auth)
        check(status == 200, f"GET {path}: {status} {body}")
        return body

    def wait_healthy(self, within: float) -> float:
        start = time.monotonic()
        deadline = start + within
        last: Any = None
        while time.monotonic() < deadline:
            state = self.engine.run("inspect", "--format", "{{.State.Status}}", self.ctr,
                                    quiet=True).stdout.strip()
            check(state == "running", f"container is {state}:\n{self.logs()[-3000:]}")
            status, last = self.http("GET", "/health")
            if status == 200:
                return time.monotonic() - start
            time.sleep(0.25)
        raise SmokeFailure(f"/health not 200 within {within:.0f} s: {last}\n{self.logs()[-3000:]}")

    def logs(self) -> str:
        done = self.engine.run("logs", self.ctr, quiet=True, check_rc=False)
        return done.stdout + done.stderr

    def deliver(self, key: str, summary: str) -> str:
        status, body = self.http("POST", "/webhook/jira", {"key": key, "summary": summary},
                                 headers={"X-Webhook-Token": self.env["WEBHOOK_SECRET"]})
        check(status == 202 and isinstance(body, dict) and body.get("status") == "queued",
              f"webhook {key}: {status} {body}")
        return str(body["run_id"])

    def wait_run(self, run_id: str, within: float, until: Any) -> dict[str, Any]:
        deadline = time.monotonic() + within
        run: dict[str, Any] = {}
        while time.monotonic() < deadline:
            run = self.operator(f"/runs/{run_id}")
            if until(run):
                return run
            check(run["status"] not in {"failed", "cancelled", "no_changes"},
                  f"run {run_id} ended {run['status']}: {run.get('error')}\n{self.logs()[-3000:]}")
            time.sleep(0.5)
        raise SmokeFailure(f"run {run_id} did not get there within {within:.0f} s: "
                           f"{run.get('status')} {[(s['name'], s['status']) for s in run.get('steps', [])]}")

    def pr_records(self) -> list[dict[str, Any]]:
        done = self.engine.exec(self.ctr, "cat", "/workspace/pull-requests.json", user=str(SERVICE_UID),
                                quiet=True, check_rc=False)
        if done.returncode != 0:
            return []
        return list(json.loads(done.stdout).get("pull_requests", []))


def step_running(name: str) -> Any:
    return lambda run: any(s["name"] == name and s["status"] == "running" for s in run.get("steps", []))


def succeeded(run: dict[str, Any]) -> bool:
    return run["status"] == "succeeded"


# ----- the steps --------------------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--engine", default="podman")
    parser.add_argument("--image", default="localhost/auto-code:smoke")
    parser.add_argument("--no-build", action="store_true", help="use an image built before")
    parser.add_argument("--build-flag", action="append", default=[],
                        help="extra build flag (repeatable), e.g. --pull=never or --build-arg=K=V")
    parser.add_argument("--keep", action="store_true", help="keep the container and volume")
    args = parser.parse_args()
    engine = Engine(args.engine)
    suffix = secrets.token_hex(3)
    ctr, vol = f"auto-code-smoke-{suffix}", f"auto-code-smoke-{suffix}"
    tmp = Path(tempfile.mkdtemp(prefix="auto-code-smoke-"))
    created: list[tuple[str, str]] = []
    try:
        run_all(engine, args, ctr, vol, tmp, created)
    except SmokeFailure as exc:
        say(f"FAILED: {exc}")
        return 1
    finally:
        if not args.keep:
            for kind, name in reversed(created):
                engine.run(*(("rm", "-f", name) if kind == "ctr" else ("volume", "rm", "-f", name)),
                           check_rc=False, quiet=True)
        for path in sorted(tmp.rglob("*"), reverse=True):
            path.unlink() if not path.is_dir() else path.rmdir()
        tmp.rmdir()
    say("passed; durations: " + ", ".join(f"{n} {t:.1f}s" for n, t in TIMINGS)
        + f"; total {time.monotonic() - T0:.1f}s")
    for note in NOTES:
        say(f"note: {note}")
    return 0


def run_all(engine: Engine, args: argparse.Namespace, ctr: str, vol: str, tmp: Path,
            created: list[tuple[str, str]]) -> None:
    image = args.image
    app = compose_app()
    if not args.no_build:
        with Step("build"):
            flags = ["--format", "docker"] if engine.podman else []
            engine.run("build", *flags, *args.build_flag, "-t", image, "-f", str(ROOT / "Dockerfile"),
                       str(ROOT), timeout=900)

    with Step("image"):
        info = json.loads(engine.run("image", "inspect", image, quiet=True).stdout)[0]
        config = info.get("Config") or {}
        check(not config.get("User"), f"image sets USER {config.get('User')!r} (tini must be root)")
        check((config.get("Entrypoint") or [])[:2] == ["/usr/bin/tini", "--"], config.get("Entrypoint"))
        check("--no-new-privs" in (config.get("Entrypoint") or []), "setpriv without --no-new-privs")
        # Docker keeps it under Config, podman at the top level.
        health = (config.get("Healthcheck") or info.get("Healthcheck") or {}).get("Test")
        check(health == app["healthcheck"]["test"],
              f"image HEALTHCHECK {health} differs from the compose health test")
        size_mb = int(info["Size"]) / 1e6
        say(f"image size {size_mb:.0f} MB")
        NOTES.append(f"image size {size_mb:.0f} MB")

    with Step("plain"):
        # No compose options at all: the production default refuses without secrets, as one line.
        done = engine.run(*ONE_OFF, image, check_rc=False, timeout=120)
        lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
        check(done.returncode == 2 and len(lines) == 1
              and lines[0].startswith("auto-code: invalid production configuration: "),
              f"default command without secrets: exit {done.returncode}, stderr {done.stderr[-1500:]!r}")
        done = engine.run(*ONE_OFF, image, "sh", "-c",
                          "id -u; grep NoNewPrivs /proc/self/status")
        check(done.stdout.split() == [str(SERVICE_UID), "NoNewPrivs:", "1"], done.stdout)

    flags = compose_flags(engine, app)

    with Step("demo"):
        done = engine.run(*ONE_OFF, *flags, image, "auto-code", "demo", timeout=300)
        check("succeeded" in done.stdout, f"demo output: {done.stdout[-2000:]}")

    with Step("seed"):
        engine.run("volume", "create", vol, quiet=True)
        created.append(("vol", vol))
        script = {"tickets": {"SMOKE-2": {"implement": [
            {"write": "docs/tickets/{slug}.md", "content": "# {key}: {summary}\n"},
            {"write": ".smoke-slow", "content": "the smoke test's lint command sleeps while this exists\n"},
        ]}}}
        seed = ("set -e; umask 077; git init -q --bare -b main /workspace/origin.git; "
                "git init -q -b main /tmp/seed; cd /tmp/seed; echo '# smoke target' > README.md; "
                "git add README.md; git -c user.name=smoke -c user.email=smoke@invalid commit -q -m init; "
                "git push -q /workspace/origin.git main; cat > /workspace/smoke-script.json")
        engine.run(*ONE_OFF, "-i", "-v", f"{vol}:/workspace", image,
                   "sh", "-c", seed, input_text=json.dumps(script))

    env = {
        "NODE_ENV": "development", "SANDBOX": "bwrap", "SANDBOX_SELF_CHECK": "true",
        "CLAUDE_CLIENT": "mock", "GITHUB_CLIENT": "local",
        "MOCK_CLAUDE_SCRIPT": "/workspace/smoke-script.json",
        "REPO_URL": "/workspace/origin.git", "ALLOWED_PROJECTS": "SMOKE",
        "OPERATOR_TOKEN": secrets.token_hex(32), "WEBHOOK_SECRET": secrets.token_hex(32),
        "ENABLE_LINT": "true",
        "LINT_COMMAND": json.dumps(["sh", "-c",
                                    f"if [ -e .smoke-slow ]; then sleep {SLOW_LINT_S}; fi; exit 0"]),
        "QUEUE_POLL_INTERVAL_SEC": "0.5",
    }
    env_file = tmp / "smoke.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    env_file.chmod(0o600)
    service = Service(engine, ctr, 3001, env)

    with Step("serve"):
        engine.run("run", "-d", "--name", ctr, "--hostname", HOSTNAME, "--network", "none",
                   "-v", f"{vol}:/workspace", "--env-file", str(env_file), *flags, image)
        created.append(("ctr", ctr))
        first = service.wait_healthy(90)
        say(f"/health answered {first:.1f} s after the container started")
        NOTES.append(f"first /health 200 after {first:.1f} s")
        logs = service.logs()
        check('"sandbox_self_check_passed"' in logs, f"no sandbox self-check in the log:\n{logs[-3000:]}")
        check('"service_started"' in logs, "no service_started")

    with Step("checks"):
        procs = json.loads(engine.exec(ctr, "python", "-c", PROCS, quiet=True).stdout)
        pid1 = next(p for p in procs if p["pid"] == 1)
        check(pid1["cmd"][0].endswith("tini") and pid1["uid"] == ["0"] * 4, f"PID 1: {pid1}")
        serve = [p for p in procs if p["pid"] != 1 and p["cmd"][-2:] == ["/app/.venv/bin/auto-code", "serve"]]
        check(len(serve) == 1, f"service processes: {serve}")
        check(serve[0]["uid"] == [str(SERVICE_UID)] * 4, f"service uid: {serve[0]}")
        check(serve[0]["nnp"] == "1" and int(serve[0]["caps"], 16) == 0, f"service privileges: {serve[0]}")
        denied = engine.exec(ctr, "cat", "/proc/1/environ", user=str(SERVICE_UID), check_rc=False, quiet=True)
        check(denied.returncode != 0, "/proc/1/environ is readable by the service uid")
        ro = engine.exec(ctr, "sh", "-c",
                         "touch /app/x 2>&1; touch /etc/x 2>&1; touch /tmp/ok && echo tmp-ok",
                         check_rc=False, quiet=True)
        check(ro.stdout.count("Read-only file system") == 2 and "tmp-ok" in ro.stdout,
              f"read-only root: {ro.stdout}")
        if engine.podman:
            hc = engine.run("healthcheck", "run", ctr, check_rc=False)
            check(hc.returncode == 0, f"HEALTHCHECK failed: {hc.stdout} {hc.stderr}")
        else:  # Docker runs the HEALTHCHECK itself
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                state = engine.run("inspect", "--format", "{{.State.Health.Status}}", ctr, quiet=True)
                if state.stdout.strip() == "healthy":
                    break
                time.sleep(1)
            else:
                raise SmokeFailure("HEALTHCHECK never reported healthy")

    with Step("webhook"):
        run_id = service.deliver("SMOKE-1", "Add a smoke file")
        run = service.wait_run(run_id, 120, succeeded)
        records = [r for r in service.pr_records() if r.get("head") == run["branch"]]
        check(len(records) == 1, f"PR records for {run['branch']}: {records}")
        listed = engine.exec(ctr, "auto-code", "runs", user=str(SERVICE_UID), quiet=True)
        check(run_id in listed.stdout, f"`auto-code runs` does not list {run_id}")
        say(f"run {run_id}: {run['status']}, steps {[s['name'] for s in run['steps']]}, PR {run['pr_url']}")

    with Step("stop"):
        run_id = service.deliver("SMOKE-2", "A change whose lint is slow")
        service.wait_run(run_id, 120, step_running("lint"))
        before = len(service.logs())
        started = time.monotonic()
        engine.run("stop", "-t", str(STOP_TIMEOUT_S), ctr, timeout=STOP_TIMEOUT_S + 60)
        took = time.monotonic() - started
        code = engine.run("inspect", "--format", "{{.State.ExitCode}}", ctr, quiet=True).stdout.strip()
        after = service.logs()[before:]
        say(f"stop took {took:.1f} s, exit code {code}")
        NOTES.append(f"stop during lint: {took:.1f} s, exit {code}")
        check(code in {"0", "143"}, f"exit code {code} after stop (137 = SIGKILL):\n{after[-3000:]}")
        check(took < STOP_TIMEOUT_S - 5, f"stop took {took:.1f} s: the engine had to SIGKILL")
        check('"service_stopped"' in after, f"no service_stopped after stop:\n{after[-3000:]}")
        check("Operation not permitted" not in after, f"tini could not forward the signal:\n{after[-3000:]}")

    with Step("restart"):
        engine.run("start", ctr)
        service.wait_healthy(90)
        run = service.operator(f"/runs/{run_id}")
        drained = run["status"] == "succeeded"
        run = service.wait_run(run_id, 120, succeeded)
        records = [r for r in service.pr_records() if r.get("head") == run["branch"]]
        check(len(records) == 1, f"PR records for {run['branch']}: {records}")
        outcome = "drained before the stop completed" if drained else "resumed after the restart"
        steps = [(s["name"], s["status"]) for s in run["steps"]]
        say(f"run {run_id}: {outcome}; {run['status']}, steps {steps}, one PR record "
            f"({records[0].get('html_url')})")
        NOTES.append(f"stop-while-running: {outcome}, {run['status']}, exactly one PR record")


if __name__ == "__main__":
    sys.exit(main())
