"""Which repository a run works on, and what that repository brings: the routing (`decide`, then
`settle` in `start`), the `configure` step (the repository's own file on its base branch) and the end
of a run that no single repository takes (`not_started`: `needs_routing`, or a ticket Jira would not
give us).

`decide(run)` reads the ticket from Jira when credentials are set (the delivery's copy may be only a
key), routes it (app/repositories/routing.py: rules, never the model) and returns the RunOptions
that fix the run's shape - repository, gates, limits, commands, budget. The dispatcher calls it
before it hands the run to the queue, because the repository is the run's queue partition (a burst
for one repository must not take every queue slot, app/repositories/fairness.py); the options
travel as the workflow's input, so a replay after a crash takes the same repository with the same
settings whatever the configuration says by then. `start` records them on the run (`settle`).
"""

from __future__ import annotations

import logging

from dbos import DBOS

from app.errors import AutoCodeError
from app.models import RunKind
from app.repositories.in_repo import IN_REPO_FILE, Effective, InRepoFileError, effective
from app.repositories.routing import Routed, Unroutable
from app.services.runner.errors import StepFailed
from app.services.runner.models import RunOptions, RunRef, Unrouted, WorktreeRef
from app.services.runner.record import StepBase

log = logging.getLogger(__name__)


class RepoSteps(StepBase):
    async def decide(self, run: RunRef, *, parent_run_id: str | None = None,
                     kind: RunKind = "ticket") -> RunOptions:
        """The run's options (see the module docstring), with no write: the dispatcher calls this
        before the run is handed to the queue (its repository is the queue partition, fairness.py),
        and the `start` step records what it decided (`settle`). `parent_run_id`: a follow-up works
        in its parent run's repository. What `start` should log goes in `notes`.

        The options are the workflow's input and the start step's output, kept in DBOS's tables:
        what they carry of the ticket (its copy as Jira has it, the notes, why it is not routed) is
        redacted as the record's copy is; the operator's settings (commands, ...) are kept as set."""
        opts = await self._decide(run, parent_run_id=parent_run_id, kind=kind)
        of_ticket = opts.model_dump(mode="json", include={"ticket", "notes", "unroutable"})
        told = self.d.scanner.redact_all(of_ticket)
        assert isinstance(told, dict)
        return RunOptions.model_validate({**opts.model_dump(mode="json"), **told})

    async def _decide(self, run: RunRef, *, parent_run_id: str | None, kind: RunKind) -> RunOptions:
        d = self.d
        assert d.repositories is not None  # PipelineDeps sets it
        ticket, notes = None, []
        if d.issues is not None:
            custom = tuple(sorted({r.field for c in d.repositories.configs for r in c.routes if r.field}))
            try:
                ticket = await d.issues.read(run.key, custom)
            except AutoCodeError as exc:
                if not (run.ticket.summary or run.ticket.description):
                    return RunOptions.from_settings(d.settings).model_copy(update={
                        "kind": kind,
                        "not_started": d.scanner.redact(f"could not read {run.key} from Jira: {exc.detail}")})
                notes.append(("warning", f"reading the ticket from Jira failed ({exc.detail}); working "
                                         "from the delivery's copy"))
        seen = ticket or run.ticket
        decision = await self._parent_repository(parent_run_id) or d.repositories.route(seen)
        if isinstance(decision, Unroutable):
            notes.append(("warning", f"not routed: {decision.reason}"))
            return RunOptions.from_settings(d.settings).model_copy(update={
                "unroutable": Unrouted(reason=decision.reason, help=decision.help), "ticket": ticket,
                "kind": kind, "notes": tuple(notes)})
        repo = d.repository(decision.repository).config
        notes.append(("info", f"routed to repository {repo.name} ({decision.why})"))
        opts = RunOptions(
            enable_setup=repo.enable_setup, enable_review=repo.enable_review, enable_lint=repo.enable_lint,
            enable_tests=repo.enable_tests, dry_run=d.settings.dry_run, gate_max_rounds=repo.gate_max_rounds,
            repository=repo.name, routed_by=decision.why, base_branch=repo.base_branch,
            budget_usd=repo.budget_usd, in_repo_overrides=tuple(repo.in_repo_overrides), ticket=ticket,
            kind=kind, notes=tuple(notes))
        return opts.with_commands(repo.setup_command, repo.lint_command, repo.test_command, repo.instructions)

    async def decide_safely(self, run: RunRef, *, parent_run_id: str | None = None,
                            kind: RunKind = "ticket") -> RunOptions:
        """`decide`, and a run that cannot be decided (a bug, an unknown parent) ends visibly failed
        instead of blocking the dispatcher's batch on every pass."""
        try:
            return await self.decide(run, parent_run_id=parent_run_id, kind=kind)
        except Exception as exc:
            log.exception("run_decide_failed", extra={"run_id": run.run_id})
            return RunOptions.from_settings(self.d.settings).model_copy(update={
                "kind": kind, "not_started": self.d.scanner.redact(
                    f"internal error while routing the ticket: {type(exc).__name__}: {exc}")})

    async def shape(self, run: RunRef) -> RunOptions:
        """`decide` then `settle`, inside the `start` step: for a run handed to the queue without
        its options (by a version before routing moved to the dispatcher)."""
        record = await self.d.store.get_run_row(run.run_id)
        parent = record.get("parent_run_id") if record is not None else None
        kind = record.get("kind") if record is not None else None
        opts = await self.decide(run, parent_run_id=parent if isinstance(parent, str) else None,
                                 kind=kind if kind in ("ci_fix", "review_fix") else "ticket")
        await self.settle(run, opts)
        return opts

    async def settle(self, run: RunRef, opts: RunOptions) -> None:
        """Record what `decide` chose on the run (its repository, its notes), inside `start`."""
        if opts.routed:
            await self.d.store.update_run(run.run_id, repository=opts.routed)
        for level, text in opts.notes:
            await self.say(run, text, level, step="start")

    async def _parent_repository(self, parent: str | None) -> Routed | None:
        """A follow-up run (CI or review fix of a PR) works in its parent run's repository."""
        if not parent:
            return None
        parent_row = await self.d.store.get_run_row(parent)
        name = parent_row.get("repository") if parent_row is not None else None
        return Routed(repository=name, why=f"parent run {parent}") if isinstance(name, str) and name else None

    @DBOS.step()
    async def configure(self, run: RunRef, wt: WorktreeRef, opts: RunOptions) -> RunOptions:
        """The repository's `.auto-code.toml` as its base branch has it (the commit `prepare`
        fetched, read from the shared clone; never the worktree), applied where the operator allows.
        Recorded in the `prepare` row's detail (`configure`): reading the repository's own file is
        part of preparing its worktree, and the walk's step names stay as they are."""
        prepared = wt.model_dump(mode="json")
        base = Effective(setup_command=opts.setup_command or (), lint_command=opts.lint_command or (),
                         test_command=opts.test_command or (), instructions=opts.instructions)
        text, read_at = None, None
        try:
            if opts.in_repo_overrides:  # nothing allowed: the file is not even read
                workspace = self.d.repository(wt.repository).workspace
                text, read_at = await workspace.read_base_file(IN_REPO_FILE)
            eff = effective(base, opts.in_repo_overrides, text)
        except (AutoCodeError, InRepoFileError) as exc:
            reason = exc.detail if isinstance(exc, AutoCodeError) else str(exc)
            await self.d.store.finish_step(run.run_id, "prepare", "failed", {**prepared, "error": reason})
            raise StepFailed("configure", reason) from None
        await self.d.store.update_step_detail(run.run_id, "prepare", {**prepared, "configure": {
            "repository": opts.repository, "routed_by": opts.routed_by, "read_at": read_at,
            "in_repo_file": IN_REPO_FILE if text is not None else None, "applied": list(eff.applied),
            "ignored": list(eff.ignored), "setup_command": list(eff.setup_command),
            "lint_command": list(eff.lint_command), "test_command": list(eff.test_command),
            "gates": list(opts.gates)}})
        for note in eff.notes:
            await self.say(run, note, "warning", step="configure")
        if eff is base:
            return opts
        return opts.with_commands(eff.setup_command, eff.lint_command, eff.test_command, eff.instructions)

    @DBOS.step()
    async def not_started(self, run: RunRef, opts: RunOptions) -> str:
        """End a run that cannot start: `needs_routing` with a Jira comment saying how to route the
        ticket (an update that routes it starts a new run), or `failed` (the ticket could not be read)."""
        d = self.d
        if opts.unroutable is not None:
            status, error = "needs_routing", opts.unroutable.reason
            text = ("auto-code cannot tell which repository this ticket is for: "
                    f"{opts.unroutable.reason}.\n\n{opts.unroutable.help}")
        else:
            status, error = "failed", opts.not_started or "the run could not start"
            text = f"auto-code could not start on this ticket (run {run.run_id}): {error}"
        async with self.row(run, "report") as row:
            row.detail = {"outcome": status}
            if d.jira is None:
                row.status = "skipped"
                row.detail = {"reason": "Jira reporting not configured", "outcome": status}
            else:
                try:
                    await d.jira.comment(run.key, d.scanner.redact(text)[:3000])
                except Exception as exc:  # best effort, like `report`: the run's outcome stands
                    detail = exc.detail if isinstance(exc, AutoCodeError) else type(exc).__name__
                    row.status, row.detail = "failed", {"error": detail, "outcome": status}
        await d.store.update_run(run.run_id, status=status, error=error)  # type: ignore[arg-type]
        if d.metrics is not None:
            d.metrics.run_finished(status)
        await self.say(run, f"run_finished status={status} error={error}", "warning", step="finish")
        return status
