"""GitHubPullRequests against the local fake GitHub REST server (tests/fakes/github_api.py)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import pytest

from app.config import Settings
from app.errors import ConfigError, GitHubError
from app.services.github import GitHubPullRequests
from tests.fakes.github_api import FakeGitHub

TOKEN = "ghp_SECRET_do_not_leak_0123456789"


@pytest.fixture
def gh() -> Iterator[FakeGitHub]:
    with FakeGitHub(owner="acme", repo="widgets", token=TOKEN).start() as fake:
        yield fake


def settings_for(fake: FakeGitHub, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "GH_TOKEN": TOKEN,
        "GITHUB_API_URL": fake.base_url,
        "GITHUB_REPOSITORY": fake.slug,
        "WORKSPACE_DIR": "/tmp/unused",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


class Sleeps:
    """Records the waits the client asks for instead of waiting (the client takes `sleep=`)."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def client_for(fake: FakeGitHub, sleeps: Sleeps | None = None, **kw: object) -> GitHubPullRequests:
    settings = settings_for(fake, **kw.pop("settings", {}))  # type: ignore[arg-type]
    return GitHubPullRequests(settings, sleep=sleeps or Sleeps(), backoff_base_sec=0.5, **kw)  # type: ignore[arg-type]


class TestOpenOrReuse:
    async def test_creates_once_then_reuses_the_open_pr(self, gh: FakeGitHub) -> None:
        client = client_for(gh)
        first = await client.open_or_reuse(head="ticket/proj-1", base="main", title="PROJ-1: a", body="one")
        second = await client.open_or_reuse(head="ticket/proj-1", base="main", title="PROJ-1: b", body="two")
        await client.aclose()

        assert first.created and not second.created
        assert first.number == second.number == 1
        assert first.html_url == gh.prs[0]["html_url"]
        assert (first.head, first.base) == ("ticket/proj-1", "main")
        assert len(gh.prs) == 1 and gh.prs[0]["title"] == "PROJ-1: b" and gh.prs[0]["body"] == "two"
        assert len(gh.requests_for("POST")) == 1 and len(gh.requests_for("PATCH")) == 1
        listing = gh.requests_for("GET")[0]
        assert listing.query["head"] == "acme:ticket/proj-1" and listing.query["state"] == "open"

    async def test_a_closed_pr_is_not_reused(self, gh: FakeGitHub) -> None:
        gh.add_pr("ticket/proj-2", state="closed")
        client = client_for(gh)
        pr = await client.open_or_reuse(head="ticket/proj-2", base="main", title="t", body="b")
        await client.aclose()
        assert pr.created and pr.number == 2

    async def test_sends_the_api_headers_and_the_token_only_in_authorization(self, gh: FakeGitHub) -> None:
        client = client_for(gh)
        await client.open_or_reuse(head="ticket/proj-3", base="main", title="t", body="b")
        await client.aclose()
        for req in gh.requests:
            assert req.headers["authorization"] == f"Bearer {TOKEN}"
            assert req.headers["accept"] == "application/vnd.github+json"
            assert req.headers["x-github-api-version"] == "2022-11-28"
            assert TOKEN not in req.path and TOKEN not in str(req.query)

    async def test_a_lost_create_race_reuses_the_winner(self, gh: FakeGitHub) -> None:
        # The listing misses the PR (another attempt created it meanwhile): POST says 422 "already
        # exists" and the client falls back to the existing PR instead of failing the run.
        gh.add_pr("ticket/proj-4", title="old")
        gh.inject(200, body=[], method="GET", times=1)
        client = client_for(gh)
        pr = await client.open_or_reuse(head="ticket/proj-4", base="main", title="new", body="b")
        await client.aclose()
        assert not pr.created and pr.number == 1 and gh.prs[0]["title"] == "new"
        assert len(gh.prs) == 1

    async def test_github_enterprise_base_url_with_a_path_prefix(self) -> None:
        with FakeGitHub(token=TOKEN, prefix="/api/v3").start() as ghe:
            assert ghe.base_url.endswith("/api/v3")
            client = client_for(ghe)
            pr = await client.open_or_reuse(head="ticket/proj-5", base="main", title="t", body="b")
            await client.aclose()
        assert pr.created and ghe.prs[0]["head"] == "ticket/proj-5"
        assert all(r.path.startswith("/repos/acme/widgets/pulls") for r in ghe.requests)


class TestErrors:
    async def test_401_names_the_token_problem_without_the_token(self, gh: FakeGitHub) -> None:
        client = client_for(gh, settings={"GH_TOKEN": "ghp_wrong_token_value_1234"})
        with pytest.raises(GitHubError) as info:
            await client.open_or_reuse(head="ticket/x-1", base="main", title="t", body="b")
        await client.aclose()
        assert info.value.status == 401
        assert "GH_TOKEN" in info.value.detail and "Bad credentials" in info.value.detail
        assert "ghp_wrong_token_value_1234" not in str(info.value)
        assert len(gh.requests) == 1  # a 401 is not retried

    async def test_403_says_permission_and_quotes_github(self, gh: FakeGitHub) -> None:
        gh.inject(403, body={"message": "Resource not accessible by integration"}, method="POST")
        sleeps = Sleeps()
        client = client_for(gh, sleeps)
        with pytest.raises(GitHubError) as info:
            await client.open_or_reuse(head="ticket/x-2", base="main", title="t", body="b")
        await client.aclose()
        assert info.value.status == 403
        assert "permission" in info.value.detail
        assert "Resource not accessible by integration" in info.value.detail
        assert sleeps.calls == [] and len(gh.requests_for("POST")) == 1

    async def test_404_names_the_repository(self, gh: FakeGitHub) -> None:
        client = client_for(gh, settings={"GITHUB_REPOSITORY": "acme/missing"})
        with pytest.raises(GitHubError) as info:
            await client.open_or_reuse(head="ticket/x-3", base="main", title="t", body="b")
        await client.aclose()
        assert info.value.status == 404
        assert "acme/missing" in info.value.detail and "Not Found" in info.value.detail

    async def test_422_quotes_the_validation_errors(self, gh: FakeGitHub) -> None:
        gh.inject(422, method="POST", body={
            "message": "Validation Failed",
            "errors": [{"resource": "PullRequest", "code": "custom",
                        "message": "No commits between main and ticket/x-4"}],
        })
        client = client_for(gh)
        with pytest.raises(GitHubError) as info:
            await client.open_or_reuse(head="ticket/x-4", base="main", title="t", body="b")
        await client.aclose()
        assert info.value.status == 422
        assert "Validation Failed" in info.value.detail
        assert "No commits between main and ticket/x-4" in info.value.detail

    async def test_422_field_errors_are_spelled_out(self, gh: FakeGitHub) -> None:
        client = client_for(gh)
        with pytest.raises(GitHubError) as info:
            await client.open_or_reuse(head="main", base="main", title="t", body="b")
        await client.aclose()
        assert info.value.status == 422 and "PullRequest head invalid" in info.value.detail

    def test_missing_token_or_repository_is_a_config_error(self, gh: FakeGitHub) -> None:
        with pytest.raises(ConfigError, match="GH_TOKEN"):
            GitHubPullRequests(settings_for(gh, GH_TOKEN=None))
        with pytest.raises(ConfigError, match="GITHUB_REPOSITORY"):
            GitHubPullRequests(settings_for(gh, GITHUB_REPOSITORY=None, REPO_URL="https://ghe.corp/a/b.git"))
        with pytest.raises(ConfigError, match="GITHUB_REPOSITORY"):
            GitHubPullRequests(settings_for(gh, GITHUB_REPOSITORY="acme/widgets/../x"))


class TestRetries:
    async def test_5xx_is_retried_with_exponential_backoff(self, gh: FakeGitHub) -> None:
        gh.inject(502, times=2, method="POST")
        sleeps = Sleeps()
        client = client_for(gh, sleeps)
        pr = await client.open_or_reuse(head="ticket/r-1", base="main", title="t", body="b")
        await client.aclose()
        assert pr.created and len(gh.prs) == 1
        assert sleeps.calls == [0.5, 1.0]
        assert len(gh.requests_for("POST")) == 3

    async def test_5xx_until_the_attempts_run_out_is_a_clear_error(self, gh: FakeGitHub) -> None:
        gh.inject(503, times=10)
        sleeps = Sleeps()
        client = client_for(gh, sleeps, max_attempts=3)
        with pytest.raises(GitHubError) as info:
            await client.open_or_reuse(head="ticket/r-2", base="main", title="t", body="b")
        await client.aclose()
        assert info.value.status == 503 and "503" in info.value.detail
        assert len(gh.requests) == 3 and sleeps.calls == [0.5, 1.0]

    async def test_secondary_rate_limit_honours_retry_after(self, gh: FakeGitHub) -> None:
        gh.inject(403, method="POST", headers={"Retry-After": "7"},
                  body={"message": "You have exceeded a secondary rate limit."})
        sleeps = Sleeps()
        client = client_for(gh, sleeps)
        pr = await client.open_or_reuse(head="ticket/r-3", base="main", title="t", body="b")
        await client.aclose()
        assert pr.created and sleeps.calls == [7.0]

    async def test_429_with_an_exhausted_quota_waits_until_the_reset(self, gh: FakeGitHub) -> None:
        reset = int(time.time()) + 5
        gh.inject(429, method="GET", headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)})
        sleeps = Sleeps()
        client = client_for(gh, sleeps)
        await client.open_or_reuse(head="ticket/r-4", base="main", title="t", body="b")
        await client.aclose()
        assert len(sleeps.calls) == 1 and 4.0 <= sleeps.calls[0] <= 7.0

    async def test_a_wait_past_the_budget_fails_at_once(self, gh: FakeGitHub) -> None:
        gh.inject(403, headers={"Retry-After": "3600"}, body={"message": "secondary rate limit"})
        sleeps = Sleeps()
        client = client_for(gh, sleeps, retry_budget_sec=30.0)
        with pytest.raises(GitHubError) as info:
            await client.open_or_reuse(head="ticket/r-5", base="main", title="t", body="b")
        await client.aclose()
        assert info.value.status == 403 and "rate limit" in info.value.detail and "3600" in info.value.detail
        assert sleeps.calls == [] and len(gh.requests) == 1

    async def test_retry_after_really_waits(self, gh: FakeGitHub) -> None:
        gh.inject(429, headers={"Retry-After": "1"}, method="GET")
        client = GitHubPullRequests(settings_for(gh))  # the real asyncio.sleep
        started = time.monotonic()
        await client.open_or_reuse(head="ticket/r-6", base="main", title="t", body="b")
        await client.aclose()
        assert time.monotonic() - started >= 1.0

    async def test_an_unreachable_server_is_a_clear_error(self) -> None:
        with FakeGitHub(token=TOKEN).start() as fake:
            settings = settings_for(fake)
        sleeps = Sleeps()  # the fake is stopped: connections are refused
        client = GitHubPullRequests(settings, sleep=sleeps, backoff_base_sec=0.01, max_attempts=2)
        with pytest.raises(GitHubError) as info:
            await client.open_or_reuse(head="ticket/r-7", base="main", title="t", body="b")
        await client.aclose()
        assert info.value.status is None and "did not answer" in info.value.detail
        assert sleeps.calls == [0.01]


async def test_the_token_never_reaches_logs_or_errors(
    gh: FakeGitHub, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    gh.inject(502, method="POST")
    gh.inject(403, method="PATCH", body={"message": "Resource not accessible by integration"})
    client = client_for(gh)
    await client.open_or_reuse(head="ticket/s-1", base="main", title="t", body="b")
    with pytest.raises(GitHubError) as info:
        await client.open_or_reuse(head="ticket/s-1", base="main", title="t2", body="b2")
    await client.aclose()
    assert caplog.records, "the client logs its retries and outcomes"
    assert any(r.getMessage() == "github_retry" for r in caplog.records)
    for record in caplog.records:
        assert TOKEN not in record.getMessage()
        assert TOKEN not in str(record.__dict__)
    assert TOKEN not in str(info.value) and TOKEN not in repr(info.value)


class TestAsGitHubDocumentsIt:
    """Issue 11 item 7: redirects, rate limits without headers, reuse corrects the base, causes."""

    @pytest.mark.parametrize("status", [301, 307])
    async def test_a_redirect_is_a_named_error_not_a_success(self, gh: FakeGitHub, status: int) -> None:
        # A renamed repository: GitHub answers the PR call with a redirect (no PR number in it).
        location = f"{gh.base_url}/repositories/42/pulls?sig=s3cr3t"
        gh.inject(status, method="POST", headers={"Location": location},
                  body={"message": "Moved Permanently", "url": f"{gh.base_url}/repositories/42/pulls"})
        client = client_for(gh)
        with pytest.raises(GitHubError) as info:
            await client.open_or_reuse(head="ticket/d-1", base="main", title="t", body="b")
        await client.aclose()
        assert info.value.status == status
        said = f"GitHub answered {status} (a redirect to {gh.base_url}/repositories/42/pulls)"
        assert said in info.value.detail
        assert "renamed or transferred" in info.value.detail and "GITHUB_REPOSITORY" in info.value.detail
        assert "s3cr3t" not in info.value.detail  # a redirect's query may carry a signature
        assert gh.prs == [] and len(gh.requests_for("POST")) == 1  # not followed, not retried

    async def test_a_2xx_without_the_documented_fields_is_named(self, gh: FakeGitHub) -> None:
        gh.inject(201, method="POST", body={"message": "created, trust me"})
        client = client_for(gh)
        with pytest.raises(GitHubError) as info:
            await client.open_or_reuse(head="ticket/d-2", base="main", title="t", body="b")
        await client.aclose()
        assert "an object without ['number', 'html_url']" in info.value.detail
        assert "KeyError" not in str(info.value)

    async def test_rate_limit_without_headers_waits_at_least_a_minute(self, gh: FakeGitHub) -> None:
        gh.inject(403, method="POST", body={"message": "You have exceeded a secondary rate limit."})
        sleeps = Sleeps()
        client = client_for(gh, sleeps)
        pr = await client.open_or_reuse(head="ticket/d-3", base="main", title="t", body="b")
        await client.aclose()
        assert pr.created and sleeps.calls == [60.0]

    async def test_429_without_headers_repeats_longer_then_quotes_github(self, gh: FakeGitHub) -> None:
        gh.inject(429, times=10, method="GET", body={"message": "API rate limit exceeded for installation"})
        sleeps = Sleeps()
        client = client_for(gh, sleeps, retry_budget_sec=200.0)
        with pytest.raises(GitHubError) as info:
            await client.open_or_reuse(head="ticket/d-4", base="main", title="t", body="b")
        await client.aclose()
        assert sleeps.calls == [60.0, 120.0]  # then 240 s would pass the 200 s budget
        assert info.value.status == 429
        assert "API rate limit exceeded for installation" in info.value.detail
        assert "wait 240s" in info.value.detail

    async def test_reusing_an_open_pr_corrects_its_base(self, gh: FakeGitHub) -> None:
        gh.add_pr("ticket/d-5", base="develop")
        client = client_for(gh)
        pr = await client.open_or_reuse(head="ticket/d-5", base="main", title="t", body="b")
        await client.aclose()
        assert not pr.created and pr.base == "main" and gh.prs[0]["base"] == "main"
        assert gh.requests_for("PATCH")[0].json["base"] == "main"

    async def test_a_404_on_the_pr_names_the_pr_not_the_repository(self, gh: FakeGitHub) -> None:
        gh.add_pr("ticket/d-6")
        gh.inject(404, method="PATCH", body={"message": "Not Found"})
        client = client_for(gh)
        with pytest.raises(GitHubError) as info:
            await client.open_or_reuse(head="ticket/d-6", base="main", title="t", body="b")
        await client.aclose()
        assert "pull request #1 is gone from acme/widgets" in info.value.detail
