"""The `auto-code` console script.

  auto-code [serve]            run the service (uvicorn on CLAUDE_CODE_API_PORT)
  auto-code demo               the whole pipeline offline on a throwaway repo
  auto-code runs|show|logs|cancel|retry   a running service's runs API (OPERATOR_TOKEN):
                               tables, --json for scripts; exit 0 ok, 1 no such run / run failed,
                               2 usage or configuration, 3 service unreachable (app/cli_runs.py)
  auto-code recover --executor ID    finish a dead host's runs on this database (see deployment-plan.md)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

from app import cli_runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="auto-code", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser("serve", help="run the service (default)")
    serve.add_argument("--host", default=None,
                       help="bind address (default: $HOST, else 0.0.0.0 in production, 127.0.0.1 otherwise)")
    serve.add_argument("--port", type=int, default=None)
    demo = sub.add_parser("demo", help="run the pipeline offline on a throwaway repository")
    demo.add_argument("--dir", default=None, help="where to create it (default: a new temp dir)")
    demo.add_argument("--json", action="store_true", help="print the final run as JSON too")
    cli_runs.add_parsers(sub)  # runs, show, logs, cancel, retry (app/cli_runs.py)
    rec = sub.add_parser("recover", help="finish a dead host's runs here (same DATABASE_URL)")
    rec.add_argument("--executor", required=True, help="EXECUTOR_ID of the dead host")
    args = parser.parse_args(argv)
    command = args.command or "serve"
    if command == "serve":
        return _serve(getattr(args, "host", None), getattr(args, "port", None))
    if command == "demo":
        from app.demo import run_demo

        return asyncio.run(run_demo(args.dir, as_json=args.json))
    if command == "recover":
        return asyncio.run(_recover(args.executor))
    return cli_runs.run(command, args)


def bind_host(cli_host: str | None, production: bool, environ: Any = os.environ) -> str:
    """--host, else HOST from the process environment, else 0.0.0.0 in production (the container:
    cloudflared reaches it over the Docker network) and 127.0.0.1 everywhere else."""
    if cli_host:
        return cli_host
    if environ.get("HOST"):
        return str(environ["HOST"])
    return "0.0.0.0" if production else "127.0.0.1"  # noqa: S104 - production runs in a container


def _startup_failed(problems: list[str]) -> int:
    """Start-up refused: one line on stderr naming every problem, exit code 2, no traceback."""
    from app.startup import one_line

    print("auto-code: " + one_line("; ".join(problems)), file=sys.stderr, flush=True)
    return 2


def _serve(cli_host: str | None, port: int | None) -> int:
    import logging

    import uvicorn
    from pydantic import ValidationError

    from app.composition import prove_sandbox
    from app.config import Settings
    from app.errors import ConfigError, SandboxError
    from app.hardening import harden_process
    from app.main import create_app
    from app.repositories import load_repositories
    from app.startup import check_workspace, describe_validation_error

    # First, before any secret is read: same-uid processes (code the agent runs) must not be able
    # to read this process's environment block or memory.
    hardened = harden_process()
    # Everything that can refuse the start is checked here, before uvicorn (whose lifespan would turn
    # it into a traceback) and before the database is opened: the operator gets one line.
    try:
        settings = Settings()
    except ValidationError as exc:
        return _startup_failed([describe_validation_error(exc)])
    problems: list[str] = []
    # The repositories file (REPOSITORIES_FILE): every problem of it named in one line too.
    for check in (settings.check_production, lambda: load_repositories(settings),
                  lambda: check_workspace(settings.workspace_dir)):
        try:
            check()
        except ConfigError as exc:
            problems.append(exc.detail)
    if problems:
        return _startup_failed(problems)
    try:
        # create_app first: it configures the JSON logging the self-check's result line goes to
        # (building the app starts nothing). Then bubblewrap missing, or the self-check (production
        # / SANDBOX_SELF_CHECK) failing, is proved here, so a failure is one line; the lifespan
        # then does not prove it again.
        app = create_app(settings, sandbox_proven=True)
        asyncio.run(prove_sandbox(settings))
    except (ConfigError, SandboxError) as exc:
        return _startup_failed([exc.detail])
    logging.getLogger(__name__).info("process_hardened", extra={"measures": hardened})
    # log_config=None: our JSON handlers (installed by create_app) format uvicorn's lines too.
    port = port or settings.claude_code_api_port
    host = bind_host(cli_host, settings.is_production)
    logging.getLogger(__name__).info("serving", extra={"host": host, "port": port})
    uvicorn.run(app, host=host, port=port, log_config=None,
                proxy_headers=False, timeout_graceful_shutdown=30)
    return 0


async def _recover(executor: str) -> int:
    from app.config import Settings
    from app.hardening import harden_process
    from app.main import create_app, lifespan, services_of

    harden_process()

    # Enqueue only: this process exits as soon as the runs are moved, so it must not start any.
    settings = Settings(QUEUE_WORKER=False)
    app = create_app(settings)
    async with lifespan(app):
        moved = await services_of(app).runner.recover_executor(executor)
    print(json.dumps(moved, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
