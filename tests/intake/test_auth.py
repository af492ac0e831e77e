"""Webhook auth: X-Webhook-Token (constant time) or X-Hub-Signature HMAC; dev without secrets allowed."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from pydantic import ValidationError

from app.errors import Unauthorized
from app.intake.auth import authenticate, sign, signature_matches, token_matches
from tests.intake.conftest import make_settings

TOKEN = "tok-0123456789abcdef"
HMAC_KEY = "hmac-0123456789abcdef"
BODY = b'{"key": "PROJ-1"}'


def auth(settings, *, token=None, signature=None, body=BODY, has_query=False):
    return authenticate(settings, token=token, signature=signature, raw_body=body, has_query=has_query)


class TestToken:
    settings = make_settings(WEBHOOK_SECRET=TOKEN)

    def test_right_token(self) -> None:
        assert auth(self.settings, token=TOKEN) == "token"

    @pytest.mark.parametrize("wrong", ["", "tok", TOKEN + "x", TOKEN.upper(), " " + TOKEN])
    def test_wrong_token(self, wrong: str) -> None:
        with pytest.raises(Unauthorized) as info:
            auth(self.settings, token=wrong)
        assert info.value.detail == "invalid X-Webhook-Token"
        assert TOKEN not in info.value.detail

    def test_missing_token(self) -> None:
        with pytest.raises(Unauthorized) as info:
            auth(self.settings)
        assert info.value.detail == "missing X-Webhook-Token header"

    def test_query_string_is_named_in_the_refusal(self) -> None:
        with pytest.raises(Unauthorized) as info:
            auth(self.settings, has_query=True)
        assert "query string are not accepted" in info.value.detail

    def test_signature_is_not_enough_when_only_token_configured(self) -> None:
        with pytest.raises(Unauthorized):
            auth(self.settings, signature=sign(BODY, TOKEN))

    def test_non_ascii_secret_compares_bytes(self) -> None:
        secret = "pässwörd-0123456789"
        s = make_settings(WEBHOOK_SECRET=secret)
        # What Starlette hands us: the UTF-8 bytes on the wire decoded as latin-1.
        assert auth(s, token=secret.encode().decode("latin-1")) == "token"
        assert token_matches(secret.encode().decode("latin-1"), secret.encode())


class TestSignature:
    settings = make_settings(JIRA_WEBHOOK_SECRET=HMAC_KEY)

    def test_right_signature(self) -> None:
        expected = hmac.new(HMAC_KEY.encode(), BODY, hashlib.sha256).hexdigest()
        assert auth(self.settings, signature=f"sha256={expected}") == "signature"
        assert auth(self.settings, signature=f"SHA256={expected.upper()}") == "signature"

    def test_signature_of_another_body(self) -> None:
        with pytest.raises(Unauthorized) as info:
            auth(self.settings, signature=sign(BODY + b" ", HMAC_KEY))
        assert info.value.detail == "invalid X-Hub-Signature"

    @pytest.mark.parametrize("value", ["", "sha256=", "sha1=abc", "abc", "sha256=zz", "sha256=é"])
    def test_malformed_signature(self, value: str) -> None:
        assert not signature_matches(value, BODY, HMAC_KEY.encode())
        with pytest.raises(Unauthorized):
            auth(self.settings, signature=value)

    def test_token_is_not_enough_when_only_hmac_configured(self) -> None:
        with pytest.raises(Unauthorized):
            auth(self.settings, token=HMAC_KEY)


class TestBothConfigured:
    settings = make_settings(WEBHOOK_SECRET=TOKEN, JIRA_WEBHOOK_SECRET=HMAC_KEY)

    def test_either_header_is_enough(self) -> None:
        assert auth(self.settings, token=TOKEN) == "token"
        assert auth(self.settings, signature=sign(BODY, HMAC_KEY)) == "signature"

    def test_a_wrong_token_falls_through_to_a_right_signature(self) -> None:
        assert auth(self.settings, token="nope", signature=sign(BODY, HMAC_KEY)) == "signature"

    def test_missing_names_both(self) -> None:
        with pytest.raises(Unauthorized) as info:
            auth(self.settings)
        assert info.value.detail == "missing X-Webhook-Token or X-Hub-Signature header"


class TestNoSecret:
    def test_development_allows(self) -> None:
        assert auth(make_settings(NODE_ENV="development")) == "none"

    @pytest.mark.parametrize("name", ["WEBHOOK_SECRET", "JIRA_WEBHOOK_SECRET", "OPERATOR_TOKEN"])
    @pytest.mark.parametrize("env", ["development", "production"])
    @pytest.mark.parametrize("blank", ["", "   "])
    def test_set_but_empty_secret_is_a_configuration_error(self, name: str, env: str, blank: str) -> None:
        # Not a silent "unset" (which would turn webhook auth off in development).
        with pytest.raises(ValidationError, match=f"{name}[\\s\\S]*set but empty"):
            make_settings(NODE_ENV=env, **{name: blank})

    def test_production_refuses(self) -> None:
        with pytest.raises(Unauthorized):
            auth(make_settings(NODE_ENV="production"), token="anything")
