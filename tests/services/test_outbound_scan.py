"""SecretScanner: which values it knows (Settings + run time) and the forms it finds them in."""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from app.services.outbound_scan import SecretScanner, describe
from tests.conftest import make_settings

TOKEN = "ghp_Outb0undScanTok3n+/=value-42"  # has characters every encoding treats differently


@pytest.fixture
def scanner() -> SecretScanner:
    return SecretScanner({"GH_TOKEN": TOKEN})


class TestValues:
    def test_every_secret_setting_and_the_database_password(self, tmp_path: Path) -> None:
        settings = make_settings(
            tmp_path, GH_TOKEN="gh-token-value-1", ANTHROPIC_API_KEY="sk-ant-value-2",
            WEBHOOK_SECRET="webhook-secret-value-3", JIRA_WEBHOOK_SECRET="jira-hook-secret-4",
            OPERATOR_TOKEN="operator-token-value-5", JIRA_API_TOKEN="jira-api-token-6",
            LANGFUSE_SECRET_KEY="sk-lf-value-7", LANGFUSE_PUBLIC_KEY="pk-lf-value-8",
            DATABASE_URL="postgresql://svc:p%40ss-word-9@127.0.0.1:5432/db",
        )
        scanner = SecretScanner.from_settings(settings)
        assert scanner.names == sorted([
            "GH_TOKEN", "ANTHROPIC_API_KEY", "WEBHOOK_SECRET", "JIRA_WEBHOOK_SECRET", "OPERATOR_TOKEN",
            "JIRA_API_TOKEN", "LANGFUSE_SECRET_KEY", "LANGFUSE_PUBLIC_KEY", "DATABASE_URL"])
        assert scanner.find("the db password is p@ss-word-9") == ["DATABASE_URL"]  # decoded from the URL
        both = ["ANTHROPIC_API_KEY", "LANGFUSE_PUBLIC_KEY"]
        assert scanner.find("pk-lf-value-8 and sk-ant-value-2") == both

    def test_short_and_empty_values_are_ignored(self) -> None:
        scanner = SecretScanner({"GH_TOKEN": "short", "OPERATOR_TOKEN": ""})
        assert scanner.names == [] and scanner.find("short") == []

    def test_run_time_values(self, scanner: SecretScanner) -> None:
        scanner.add("MODEL_PROXY_TOKEN", "per-run-capability-token")
        scanner.add("MODEL_PROXY_TOKEN", "another-run-capability")  # two runs at once: both count
        assert scanner.find("x per-run-capability-token y") == ["MODEL_PROXY_TOKEN"]
        assert scanner.find("another-run-capability") == ["MODEL_PROXY_TOKEN"]
        scanner.remove("MODEL_PROXY_TOKEN", "per-run-capability-token")
        assert scanner.find("x per-run-capability-token y") == []
        assert scanner.find("another-run-capability") == ["MODEL_PROXY_TOKEN"]
        scanner.remove("MODEL_PROXY_TOKEN")
        assert scanner.find("another-run-capability") == []
        with pytest.raises(ValueError):
            scanner.add("not a name", "whatever-value")


class TestForms:
    @pytest.mark.parametrize("prefix", ["", "a", "ab", "x-access-token:", "user:"])
    @pytest.mark.parametrize("encode", [base64.b64encode, base64.urlsafe_b64encode])
    def test_base64_at_every_alignment_inside_a_longer_stream(
        self, scanner: SecretScanner, prefix: str, encode
    ) -> None:
        stream = encode(f"{prefix}{TOKEN} and more".encode()).decode()
        assert scanner.find_forms(f"Authorization: Basic {stream}") == [("GH_TOKEN", "base64")]

    def test_raw_url_encoded_and_hex(self, scanner: SecretScanner) -> None:
        assert scanner.find_forms(f"token={TOKEN}") == [("GH_TOKEN", "raw")]
        assert scanner.find_forms(f"?t={quote(TOKEN, safe='')}&") == [("GH_TOKEN", "url-encoded")]
        assert scanner.find_forms(f"?t={quote_plus(TOKEN)}&") == [("GH_TOKEN", "url-encoded")]
        hexed = binascii.hexlify(TOKEN.encode()).decode()
        assert scanner.find_forms(f"0x{hexed}") == [("GH_TOKEN", "hex")]
        assert scanner.find_forms(hexed.upper()) == [("GH_TOKEN", "hex")]

    def test_bytes_are_read_as_latin1(self, scanner: SecretScanner) -> None:
        blob = b"\x00\xff\x80PNG" + TOKEN.encode() + b"\xc3\x00"
        assert scanner.find(blob) == ["GH_TOKEN"]

    def test_clean_text_and_a_partial_value_are_not_hits(self, scanner: SecretScanner) -> None:
        assert scanner.find("nothing here: ghp_ and base64 " + base64.b64encode(b"hello").decode()) == []
        assert scanner.find(TOKEN[:-1]) == []


class TestRedact:
    def test_every_form_is_replaced_by_the_name(self, scanner: SecretScanner) -> None:
        b64 = base64.b64encode(TOKEN.encode()).decode()
        text = f"raw {TOKEN} b64 {b64} url {quote(TOKEN, safe='')} end"
        out = scanner.redact(text)
        assert TOKEN not in out and b64 not in out and quote(TOKEN, safe="") not in out
        assert out.count("[redacted:GH_TOKEN]") == 3 and out.startswith("raw ") and out.endswith(" end")
        assert scanner.find(out) == []

    def test_nested_data(self, scanner: SecretScanner) -> None:
        data = {"a": [TOKEN, {"b": f"x{TOKEN}"}], "n": 3}
        redacted = "[redacted:GH_TOKEN]"
        assert scanner.redact_all(data) == {"a": [redacted, {"b": f"x{redacted}"}], "n": 3}

    def test_describe_names_and_forms(self) -> None:
        assert describe([("GH_TOKEN", "raw"), ("GH_TOKEN", "base64"), ("A_KEY", "hex")]) == (
            "A_KEY (hex), GH_TOKEN (base64, raw)")
