"""The register's CSV and PDF exports in the role matrix (gathered by tests/test_role_matrix.py)."""

from tests.matrix import Row

ROWS: list[Row] = []
