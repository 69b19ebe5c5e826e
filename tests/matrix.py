"""The role matrix's vocabulary: the personas, a row, and the usual expectations.

Rows live beside the feature they test (tests/consent/matrix_*.py) and are gathered by
tests/test_role_matrix.py.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

PERSONAS = ("anonymous", "headteacher", "teacher", "office", "dpo", "siro", "org_admin", "other_teacher")


@dataclass(frozen=True)
class Row:
    name: str
    expect: dict[str, int]
    kwargs: Callable = field(default=lambda personas: {})
    method: str = "get"

    def __post_init__(self):
        missing = set(PERSONAS) - set(self.expect)
        assert not missing, f"{self.name}: no expectation for {sorted(missing)}"


def everyone(status: int = 200, **overrides) -> dict[str, int]:
    expect = {persona: status for persona in PERSONAS}
    expect["anonymous"] = 302
    expect.update(overrides)
    return expect


AUDIT_READERS = everyone(403, headteacher=200, dpo=200, siro=200, org_admin=200)
REGISTRY_EDITORS = everyone(403, headteacher=200, office=200, org_admin=200, other_teacher=404)
