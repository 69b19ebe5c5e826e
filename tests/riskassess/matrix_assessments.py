"""Assessments: the register, new from template, copy, editing rows, submit, approve, versions."""
# Rows of the role matrix, gathered by tests/test_role_matrix.py.

from tests.matrix import Row

ROWS: list[Row] = []
