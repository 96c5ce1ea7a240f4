"""Settings: a malformed AXIS_* value stops the axis at start-up, naming the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from axis.config import build_settings


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("AXIS_STORE", "mysql://db/axis"),
        ("AXIS_RECEIPT_DEADLINE", "tomorrow"),
        ("AXIS_RECEIPT_DEADLINE", "-5"),
        ("AXIS_PUSH_CA_BUNDLE", "/nonexistent/ca.pem"),
        ("AXIS_LOG_LEVEL", "verbose"),
        ("AXIS_PUSH_ENABLED", "maybe"),
        ("AXIS_LOG_JSON", "maybe"),
        ("AXIS_PORT", "eighty"),
        ("AXIS_PORT", "99999"),
        ("AXIS_PORT", "0"),
        ("AXIS_MAX_BYTES", "0"),
        ("AXIS_BODY_TIMEOUT", "0"),
        ("AXIS_BODY_MIN_RATE", "100"),
        ("AXIS_RATE_LIMIT", "-1"),
        ("AXIS_PUSH_RETRY_CAP", "1"),
        ("AXIS_CONSOLE_IDLE", "0"),
        ("AXIS_CONSOLE_IDLE", "50000"),  # longer than the whole session
        ("AXIS_CONSOLE_SECURE_COOKIE", "yes"),
        ("AXIS_CONSOLE_SIGNIN_RATE", "-1"),
    ],
)
def test_a_malformed_value_is_refused_naming_its_variable(var: str, value: str) -> None:
    """Each of these would otherwise start an axis that does something else than asked."""
    with pytest.raises(ValueError, match=var):
        build_settings(env={var: value})


@pytest.mark.parametrize(
    ("var", "value", "field", "expected"),
    [
        ("AXIS_PUSH_ENABLED", "off", "push_enabled", False),
        ("AXIS_PUSH_ENABLED", "YES", "push_enabled", True),
        ("AXIS_LOG_JSON", "0", "log_json", False),
        ("AXIS_LOG_LEVEL", "WARNING", "log_level", "WARNING"),
        ("AXIS_RECEIPT_DEADLINE", "3600", "receipt_deadline", "3600"),
        ("AXIS_STORE", "postgresql://axis@db/axis", "store", "postgresql://axis@db/axis"),
        ("AXIS_CONSOLE_SECURE_COOKIE", "true", "console_secure_cookie", "true"),
        ("AXIS_CONSOLE_IDLE", "600", "console_idle", 600.0),
    ],
)
def test_well_formed_values_are_taken(var: str, value: str, field: str, expected: object) -> None:
    """Booleans take true/false, 1/0, yes/no, on/off in any case; levels any case."""
    assert getattr(build_settings(env={var: value}), field) == expected


def test_flags_win_over_variables_and_an_existing_ca_bundle_is_taken(tmp_path: Path) -> None:
    """--port beats AXIS_PORT; a CA bundle that exists is accepted."""
    bundle = tmp_path / "ca.pem"
    bundle.write_text("")
    settings = build_settings(
        {"port": 9000}, env={"AXIS_PORT": "8081", "AXIS_PUSH_CA_BUNDLE": str(bundle)}
    )
    assert settings.port == 9000 and settings.push_ca_bundle == str(bundle)
