"""The secrets scan: known values and secret-shaped strings are found with their line, never echoed; the
allow marker exempts a line from the patterns only; the repository itself is clean."""

from __future__ import annotations

from pathlib import Path

import pytest

from lakehouse.config import PROJECT_ROOT
from lakehouse.security import secrets_scan as scan

KNOWN = {"airflow_password:admin": "Zq8-u1Xk3vR9pT2w", "file:pseudonym.key": "a3f1" * 16}


def _findings(tmp_path: Path, text: str, known: dict[str, str] | None = None) -> list[scan.Finding]:
    path = tmp_path / "sample.txt"
    path.write_text(text, encoding="utf-8")
    report = scan.ScanReport()
    scan.scan_files("logs", [path], tmp_path, KNOWN if known is None else known, report)
    assert report.scanned == {"logs": 1}
    return report.findings


def test_a_known_secret_is_found_at_its_line_and_never_echoed(tmp_path: Path) -> None:
    text = "starting task\nconnecting with password Zq8-u1Xk3vR9pT2w to the API\ndone\n"
    findings = _findings(tmp_path, text)
    assert findings == [scan.Finding("logs", "sample.txt:2", "known:airflow_password:admin")]
    assert all(KNOWN["airflow_password:admin"] not in str(f) for f in findings)


# each sample is split in the source (+), so this file itself stays clean for the repository scan
@pytest.mark.parametrize(
    ("line", "detector"),
    [
        ("-----BEGIN RSA " + "PRIVATE KEY-----", "private_key_block"),
        ("aws_access_key_id = AKIA" + "IOSFODNN7EXAMPLE", "aws_access_key_id"),
        ("Bearer eyJhbGciOiJIUzI1NiJ9" + ".eyJzdWIiOiJhZG1pbiJ9.c2lnbmF0dXJlLXNpZ25hdHVyZQ", "json_web_token"),
        ("MLFLOW_TRACKING_URI=postgresql://mlflow:hunter2" + "hunter@db.internal:5432/mlflow", "password_in_url"),
        ('db_password = "s3cr' + 't3-value-42"', "secret_literal"),
        ("{'api_token': 'abcd" + "efgh12345678'}", "secret_literal"),
    ],
)
def test_each_pattern_finds_its_shape(tmp_path: Path, line: str, detector: str) -> None:
    assert [f.detector for f in _findings(tmp_path, f"x\n{line}\n", known={})] == [detector]


@pytest.mark.parametrize(
    "line",
    [
        "password_file: null  # read from a file",
        'token = os.environ["AIRFLOW_TOKEN"]',
        'password = "${AIRFLOW_PASSWORD}"',
        "tracking_uri: http://127.0.0.1:15000",
        'secret = "short"',
    ],
)
def test_references_to_secrets_are_not_secrets(tmp_path: Path, line: str) -> None:
    assert _findings(tmp_path, line, known={}) == []


def test_the_allow_marker_exempts_patterns_but_never_a_known_value(tmp_path: Path) -> None:
    marker = "  # secrets-scan: " + "allow"  # not on this line itself: the repository scan must still see the rest
    text = 'TOKEN = "glsa' + f'_made-up-for-a-stub"{marker}\nKEY = "{KNOWN["file:pseudonym.key"]}"{marker}\n'
    assert _findings(tmp_path, text) == [scan.Finding("logs", "sample.txt:2", "known:file:pseudonym.key")]


def test_binary_files_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "blob.bin"
    path.write_bytes(b"\0\1\2" + KNOWN["airflow_password:admin"].encode())
    report = scan.ScanReport()
    scan.scan_files("repository", [path], tmp_path, KNOWN, report)
    assert report.findings == [] and report.scanned == {"repository": 0}


def test_the_repository_holds_no_secret_shaped_string() -> None:
    """Every file git tracks (what a commit publishes); the deployment's own secrets are checked against the
    running stack in tests/integration/test_nightly_retraining.py."""
    files = scan.repository_files()
    assert len(files) > 100 and PROJECT_ROOT / "lakehouse" / "cli.py" in files
    report = scan.ScanReport()
    scan.scan_files("repository", files, PROJECT_ROOT, {}, report)
    assert report.findings == []
