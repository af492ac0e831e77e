"""The follow-up settings (issue 11): the GitHub webhook secret is a secret like the others (never
shown, in the outbound scanner's list, a real value in production), the steering list parses."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.errors import ConfigError
from app.services.outbound_scan import settings_secrets
from tests.test_config import GOOD, prod


@pytest.mark.parametrize(
    "value,why", [("short-secret", "at least"), ("replace-with-openssl-rand-hex-32", "placeholder")]
)
def test_production_refuses_a_weak_github_webhook_secret(tmp_path: Path, value: str, why: str) -> None:
    with pytest.raises(ConfigError) as info:
        prod(tmp_path, GITHUB_WEBHOOK_SECRET=value).check_production()
    assert "GITHUB_WEBHOOK_SECRET" in info.value.detail and why in info.value.detail


def test_the_github_webhook_secret_is_a_secret(tmp_path: Path) -> None:
    value = "gh-hook-" + "s3cr3t" * 4
    settings = prod(tmp_path, GITHUB_WEBHOOK_SECRET=value, GITHUB_STEERING_USERS="alice, renovate[bot]")
    settings.check_production()
    assert value not in repr(settings) and value not in str(settings.model_dump())
    assert settings_secrets(settings)["GITHUB_WEBHOOK_SECRET"] == value  # what leaves is scanned for it
    assert settings.github_steering_users == ["alice", "renovate[bot]"]
    assert GOOD["NODE_ENV"] == "production"
