"""Assessments: the register, new from template, copy, editing rows, submit, approve, versions."""

urlpatterns = []
