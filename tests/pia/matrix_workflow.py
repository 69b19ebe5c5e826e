"""Rows of the role matrix for the PIA workflow pages, gathered by tests/test_role_matrix.py."""

from tests.matrix import Row

ROWS: list[Row] = []
