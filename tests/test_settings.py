"""Production settings refuse to start without their secrets, and `.env.example` is a deployable config.

Each case starts Django in a subprocess with an environment built from scratch: the production example
values of `.env.example` (parsed here, so the file and these tests cannot drift apart), minus or plus
one variable, and a temporary GATEHOUSE_VAR_DIR so nothing touches the checkout's var/.
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parent.parent
ENV_EXAMPLE = BASE_DIR / ".env.example"
ASSIGNMENT = re.compile(r"^(?P<name>[A-Z][A-Z0-9_]*)=(?P<value>.*)$")


def env_example_values() -> dict[str, str]:
    """The uncommented NAME=value lines of `.env.example`: the production example."""
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = ASSIGNMENT.match(line.strip())
        if match:
            values[match["name"]] = match["value"].strip().strip("'\"")
    return values


def documented_names() -> set[str]:
    """Every variable named in `.env.example`, set or shown as a commented-out alternative."""
    names = set()
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = ASSIGNMENT.match(line.strip().lstrip("#").strip())
        if match:
            names.add(match["name"])
    return names


@pytest.fixture(autouse=True)
def _no_local_env_file():
    if (BASE_DIR / ".env").exists():
        pytest.skip("a .env file in the checkout is read by the settings and would mask the variable under test")


@pytest.fixture
def production_env(tmp_path) -> dict[str, str]:
    """A clean process environment holding the production example, with its own var directory."""
    environment = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "DJANGO_SETTINGS_MODULE": "config.settings",
        **env_example_values(),
        "GATEHOUSE_VAR_DIR": str(tmp_path / "var"),
        "MEDIA_ROOT": str(tmp_path / "var" / "media"),
    }
    assert environment["DEBUG"] == "False", ".env.example's production example must have DEBUG=False"
    return environment


def run_django(environment: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, *args] if args else [sys.executable, "-c", "import django; django.setup()"]
    return subprocess.run(command, cwd=BASE_DIR, env=environment, capture_output=True, text=True, timeout=120)


def assert_refused(result: subprocess.CompletedProcess, message: str) -> None:
    assert result.returncode != 0, f"settings started but should have refused:\n{result.stdout}{result.stderr}"
    assert "ImproperlyConfigured" in result.stderr, result.stderr
    assert message in result.stderr, result.stderr


def test_production_example_starts(production_env, tmp_path):
    result = run_django(production_env)
    assert result.returncode == 0, result.stderr
    # With DEBUG off nothing may be invented locally: no generated secret files.
    assert not (tmp_path / "var" / "secret_key").exists()
    assert not (tmp_path / "var" / "field_encryption_keys").exists()


@pytest.mark.parametrize(
    ("missing", "message"),
    [
        ("SECRET_KEY", "SECRET_KEY must be set"),
        ("FIELD_ENCRYPTION_KEYS", "FIELD_ENCRYPTION_KEYS must be set"),
        ("SITE_URL", "SITE_URL must be set"),
    ],
)
def test_production_settings_refuse_to_start_without(production_env, tmp_path, missing, message):
    del production_env[missing]
    assert_refused(run_django(production_env), message)
    assert not (tmp_path / "var" / missing.lower()).exists()


@pytest.mark.parametrize(
    "keys",
    ["not-a-fernet-key", "M9STt0eQs6savA5x_Oi6Ue4jK73aUh5_eE1jQOP1b3c=,too-short"],
    ids=["malformed", "second-key-malformed"],
)
def test_production_settings_refuse_a_malformed_fernet_key(production_env, keys):
    production_env["FIELD_ENCRYPTION_KEYS"] = keys
    assert_refused(run_django(production_env), "not a Fernet key")


def test_production_settings_refuse_a_plain_http_site_url(production_env):
    production_env["SITE_URL"] = "http://gatehouse.example.org"
    assert_refused(run_django(production_env), "SITE_URL must be an https:// address")


def test_demo_mode_is_refused_with_debug_off(production_env):
    production_env["GATEHOUSE_DEMO"] = "true"
    assert_refused(run_django(production_env), "GATEHOUSE_DEMO=true needs DEBUG=true")


def test_check_deploy_passes_with_the_production_example(production_env):
    result = run_django(production_env, "manage.py", "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_env_example_documents_every_variable_the_settings_read():
    source = (BASE_DIR / "config" / "settings.py").read_text()
    read = set(re.findall(r"""\benv(?:\.\w+)?\(\s*["']([A-Z][A-Z0-9_]*)["']""", source))
    read |= set(re.findall(r"""_required_in_production\(\s*["']([A-Z][A-Z0-9_]*)["']""", source))
    assert {"DEBUG", "SECRET_KEY", "FIELD_ENCRYPTION_KEYS", "DATABASE_URL"} <= read  # the patterns still match
    missing = sorted(read - documented_names())
    assert not missing, f"config/settings.py reads these, but .env.example does not document them: {missing}"


def test_every_periodic_task_names_a_registered_task():
    from django.conf import settings

    from config.celery import app

    app.loader.import_default_modules()
    for name, entry in settings.CELERY_BEAT_SCHEDULE.items():
        assert entry["task"] in app.tasks, f"beat entry {name!r} names no task"
        # Long waits live in the database: beat only wakes the sweeps up, at most hourly.
        assert entry["schedule"] <= 3600, name
