# Sourced by bin/test and bin/demo: make sure the virtualenv exists and holds what pyproject.toml pins.
#
# VENV (default: .venv in the checkout) picks another virtualenv, e.g. a fresh one in CI. The install is
# skipped when pyproject.toml has not changed since the last one (a hash kept in the virtualenv).

GATEHOUSE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$GATEHOUSE_ROOT/.venv}"

gatehouse_python() {
    local candidate
    for candidate in python3.11 python3; do
        if command -v "$candidate" >/dev/null 2>&1 \
            && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
            echo "$candidate"
            return 0
        fi
    done
    echo "Gatehouse needs Python 3.11 (python3.11 or python3 on PATH)." >&2
    return 1
}

gatehouse_venv() {
    local extra="$1" stamp hash have
    if [ ! -x "$VENV/bin/python" ]; then
        echo "Creating the virtualenv in $VENV"
        "$(gatehouse_python)" -m venv "$VENV"
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >/dev/null 2>&1 \
            || echo "(could not upgrade pip; going on with $("$VENV/bin/python" -m pip --version | cut -d' ' -f2))"
    fi
    stamp="$VENV/.gatehouse-installed"
    hash="$(cd "$GATEHOUSE_ROOT" && sha256sum pyproject.toml | cut -d' ' -f1)"
    have="$(cat "$stamp" 2>/dev/null || true)"
    # An install with the test extra also serves bin/demo.
    if [ "$have" != "$hash $extra" ] && [ "$have" != "$hash [test]" ]; then
        echo "Installing Gatehouse and its dependencies into $VENV (quietly; this takes a minute the first time)"
        # pip's and the build backend's chatter goes to a log, shown only if the install fails.
        local log
        log="$(mktemp)"
        if ! (cd "$GATEHOUSE_ROOT" && "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
            -e ".$extra") >"$log" 2>&1; then
            cat "$log" >&2
            rm -f "$log"
            echo "Installing into $VENV failed (output above)." >&2
            return 1
        fi
        rm -f "$log"
        echo "$hash $extra" >"$stamp"
    fi
}
