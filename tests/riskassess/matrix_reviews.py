"""Reviews: reviews due, actions overdue, the organisation's matrix."""
# Rows of the role matrix, gathered by tests/test_role_matrix.py.

from tests.matrix import Row

ROWS: list[Row] = []
