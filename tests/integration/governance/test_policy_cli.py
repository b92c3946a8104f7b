"""`shopops policy` and `shopops auth` through the command line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shopops.cli.main import app as cli
from shopops.governance.policy import default_policy_dir

runner = CliRunner()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SHOPOPS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "200")
    return tmp_path / "home"


def test_policy_test_runs_the_cases_beside_the_policies(home: Path) -> None:
    result = runner.invoke(cli, ["policy", "test"])
    assert result.exit_code == 0, result.output
    assert " 0 failed" in result.output


def test_a_failing_case_and_a_malformed_policy(tmp_path: Path, home: Path) -> None:
    policies = tmp_path / "policies"
    shutil.copytree(default_policy_dir(), policies)
    (policies / "tests" / "extra.toml").write_text(
        '[[case]]\nname = "support writes stock"\n'
        'principal = { name = "sam", roles = ["support"], home_region = "vn" }\n'
        'action = "write"\nresource = \'Api::"inventory"\'\n'
        'context = { method = "PUT", path = "/" }\nexpect = "allow"\n'
    )
    failed = runner.invoke(cli, ["policy", "test", "--dir", str(policies)])
    assert failed.exit_code == 1
    assert "FAIL extra.toml#1 support writes stock: expected allow" in failed.output
    (policies / "broken.cedar").write_text('@id("x")\npermit (principal, action, resource)\nwhen { 1 + };\n')
    refused = runner.invoke(cli, ["policy", "check", "--dir", str(policies)])
    assert refused.exit_code == 78
    assert "broken.cedar:3" in refused.output.replace("\n", "")


def test_explain_a_denial(home: Path) -> None:
    result = runner.invoke(
        cli,
        [
            "policy",
            "explain",
            "--principal",
            "sam",
            "--role",
            "support",
            "--action",
            "read_pii",
            "--resource",
            'Dataset::"shop.customers"',
            "--context",
            '{"column": "email", "tag": "pii", "dataset_region": "vn"}',
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["decision"] == "deny"
    assert {p["id"] for p in body["policies"]} >= {"finance-sees-pii-in-its-region"}


def test_keys_are_created_listed_and_revoked(home: Path) -> None:
    created = runner.invoke(
        cli,
        [
            "auth",
            "create-key",
            "--name",
            "ci",
            "--kind",
            "service",
            "--role",
            "schema_client",
            "--region",
            "vn",
            "--json",
        ],
    )
    assert created.exit_code == 0, created.output
    key = json.loads(created.stdout)
    assert key["key"].startswith(f"sk_{key['key_id']}_")
    listed = json.loads(runner.invoke(cli, ["auth", "list", "--json"]).stdout)
    assert [k["key_id"] for k in listed] == [key["key_id"]]
    assert "key" not in listed[0]
    assert "secret_hash" not in listed[0]
    assert runner.invoke(cli, ["auth", "revoke", key["key_id"]]).exit_code == 0
    again = runner.invoke(cli, ["auth", "revoke", key["key_id"]])
    assert again.exit_code == 3
    assert "already revoked" in again.output
    bad = runner.invoke(cli, ["auth", "create-key", "--name", "x", "--role", "Bad Role", "--region", "vn"])
    assert bad.exit_code == 2
    assert "invalid role" in bad.output
    verified = runner.invoke(cli, ["audit", "verify", "--json"])
    assert json.loads(verified.stdout)["checked"] == 2
