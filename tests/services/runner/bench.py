"""The pipeline on a bench: `TicketRunner.pipeline` called directly with in-memory collaborators.

No DBOS, no git, no database, no HTTP: outside a DBOS workflow the step methods run as plain
coroutines, so a whole run takes milliseconds and a test asserts on what the fakes recorded (the
run store's rows, the workspace's commits and pushes, the PR records, the agent's calls, Jira's
comments). The real-git / real-CLI / DBOS tests beside this one cover the same walk for real.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.models import Ticket
from app.services.claude_code.scripted import ScriptedClaudeCode
from app.services.github.local import LocalPullRequests
from app.services.jira.recording import RecordingJiraReporter
from app.services.langfuse.noop import NoopTracer
from app.services.outbound_scan import SecretScanner
from app.services.runner.deps import PipelineDeps
from app.services.runner.models import RunRef
from app.services.runner.workflow import TicketRunner
from tests.conftest import make_settings
from tests.fakes.checks import Outcome, ScriptedChecks
from tests.fakes.run_store import InMemoryRunStore, StepRecord
from tests.fakes.workspace import InMemoryWorkspace


@dataclass
class Bench:
    runner: TicketRunner
    deps: PipelineDeps
    store: InMemoryRunStore
    workspace: InMemoryWorkspace
    checks: ScriptedChecks
    claude: ScriptedClaudeCode
    prs: LocalPullRequests
    jira: RecordingJiraReporter

    async def run(self, key: str = "PROJ-1", summary: str = "Do the thing") -> Result:
        run_id = f"{key}:{uuid.uuid4()}"
        ticket = Ticket(key=key, summary=summary)
        await self.store.create_run(run_id, key, ticket.model_dump_json())  # what intake does
        status = await self.runner.pipeline(RunRef(run_id=run_id, ticket=ticket))
        return Result(status=status, run_id=run_id, bench=self)

    @property
    def phases(self) -> list[str]:
        return [c.phase for c in self.claude.calls]


@dataclass
class Result:
    status: str
    run_id: str
    bench: Bench

    @property
    def record(self) -> dict[str, Any]:
        return self.bench.store.run(self.run_id)

    @property
    def error(self) -> str | None:
        return self.record["error"]

    @property
    def steps(self) -> list[str]:
        return self.bench.store.step_names(self.run_id)

    def step(self, name: str) -> StepRecord:
        return self.bench.store.steps(self.run_id)[name]

    def rounds(self, gate: str) -> list[tuple[str, object]]:
        """(kind, passed/has_issues) of each round of the gate's step."""
        return [(r["kind"], r.get("passed", r.get("has_issues"))) for r in self.step(gate).detail["rounds"]]

    @property
    def logs(self) -> list[str]:
        return self.bench.store.messages(self.run_id)


def bench(tmp_path: Path, script: dict[str, Any] | None = None,
          checks: dict[str, list[Outcome]] | None = None, **settings: Any) -> Bench:
    """A bench with the scripted agent (`script`: see app/services/claude_code/scripted.py), the
    scripted checks (`checks`: name → outcomes, see tests/fakes/checks.py) and settings overrides
    by env name (ENABLE_LINT=1, GATE_MAX_ROUNDS=2, DRY_RUN=1, ...)."""
    store = InMemoryRunStore()
    workspace = InMemoryWorkspace(tmp_path / "ws", seed_files={"README.md": "seed\n"})
    scripted_checks = ScriptedChecks(checks or {})  # type: ignore[arg-type]
    claude = ScriptedClaudeCode(script or {})
    prs = LocalPullRequests()
    jira = RecordingJiraReporter()
    s = make_settings(tmp_path / "workspace", **{k: str(v) for k, v in settings.items()})
    scanner = SecretScanner.from_settings(s)
    deps = PipelineDeps(settings=s, store=store, workspace=workspace, checks=scripted_checks,  # type: ignore[arg-type]
                        claude=claude, pull_requests=prs, tracer=NoopTracer(), jira=jira, scanner=scanner)
    # A config name of its own: DBOS allows one instance per name, and "runner" is the service's.
    runner = TicketRunner(deps, config_name=f"bench-{uuid.uuid4().hex[:12]}")
    return Bench(runner=runner, deps=deps, store=store, workspace=workspace, checks=scripted_checks,
                 claude=claude, prs=prs, jira=jira)


def ticket_script(**phases: object) -> dict[str, Any]:
    """A script for every ticket: implement=[ACTION...], review=[TEXT...], fix:lint=[[ACTION...]...]."""
    return {"tickets": {"*": phases}}


WRITE = [{"write": "src/feature.py", "content": "x = 1\n"}]
