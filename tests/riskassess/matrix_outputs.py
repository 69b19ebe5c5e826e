"""Outputs: the PDF, the CSV export, the heat maps."""
# Rows of the role matrix, gathered by tests/test_role_matrix.py.

from tests.matrix import Row

ROWS: list[Row] = []
