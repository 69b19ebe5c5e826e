"""Consent figures: per school or per group, how many pupils are on roll and how many are in each effective
consent state — for the home page's coverage and the pupil list's groups.

One query, one pass: the current guardians' status rows are folded per pupil (a flag per state, with
GROUP BY), then counted per school or group. The rule is `services.effective_state`'s, as in
`views_staff.with_effective_state`: any "no" wins (refused before withdrawn), then a consent by a guardian
with parental responsibility (needing renewal when every such consent does), then a lapse; only statuses of
guardians still linked to the pupil and not erased count. `with_effective_state` asks the same with five
correlated subqueries per pupil, which is right for filtering but grows badly when counting a whole school
or organisation: on PostgreSQL, 15 s for the groups of a school of 1,000 pupils in three groups each
(bench/pages.py), against a few milliseconds here.
"""

from dataclasses import dataclass

from django.db import connection

from .models import ConsentState, ConsentStatus, Group, Guardian, Guardianship, Pupil, Purpose

BY = {"school": "p.school_id", "group": "gp.group_id"}


@dataclass(frozen=True)
class Figures:
    total: int = 0
    given: int = 0  # every effective consent, renewal needed or not
    renewal: int = 0  # consents every guardian's of which waits for renewal
    refused: int = 0
    withdrawn: int = 0
    lapsed: int = 0

    @property
    def consented(self) -> int:
        """Consents that need nothing more."""
        return self.given - self.renewal

    @property
    def no_answer(self) -> int:
        return self.total - self.given - self.refused - self.withdrawn - self.lapsed


def _table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _pupil_flags_sql(purpose: Purpose, schools: str) -> tuple[str, list]:
    """Per pupil of these schools with a current guardian's status row: one 0/1 flag per state."""
    given = "cs.state = %s AND gs.parental_responsibility"
    sql = f"""
        SELECT cs.pupil_id,
               MAX(CASE WHEN cs.state = %s THEN 1 ELSE 0 END) AS refused,
               MAX(CASE WHEN cs.state = %s THEN 1 ELSE 0 END) AS withdrawn,
               MAX(CASE WHEN {given} THEN 1 ELSE 0 END) AS given,
               MAX(CASE WHEN {given} AND NOT cs.renewal_needed THEN 1 ELSE 0 END) AS given_current,
               MAX(CASE WHEN cs.state = %s THEN 1 ELSE 0 END) AS lapsed
        FROM {_table(ConsentStatus)} cs
        JOIN {_table(Pupil)} sp ON sp.id = cs.pupil_id
        JOIN {_table(Guardianship)} gs ON gs.guardian_id = cs.guardian_id AND gs.pupil_id = cs.pupil_id
        JOIN {_table(Guardian)} g ON g.id = cs.guardian_id
        WHERE cs.purpose_id = %s AND g.archived_at IS NULL AND sp.school_id IN ({schools})
        GROUP BY cs.pupil_id"""  # noqa: S608 (names from the models, values as parameters)
    return sql, [ConsentState.REFUSED, ConsentState.WITHDRAWN, ConsentState.GIVEN, ConsentState.GIVEN,
                 ConsentState.LAPSED, purpose.pk]


def consent_figures(*, school_ids, purpose: Purpose | None, by: str = "school",
                    include_archived: bool = False) -> dict[int, Figures]:
    """School id (or group id) → the figures of its pupils on roll (not left; not erased unless
    `include_archived`). By group, a pupil counts in each of their groups; schools or groups without pupils
    are absent. Without a purpose, only the totals."""
    school_ids = [int(pk) for pk in school_ids]
    if not school_ids:
        return {}
    key = BY[by]
    schools = ", ".join(["%s"] * len(school_ids))
    joins, params = "", []
    if by == "group":
        joins += f" JOIN {_table(Group.pupils.through)} gp ON gp.pupil_id = p.id"
    counts = "0, 0, 0, 0, 0"
    if purpose is not None:
        flags, params = _pupil_flags_sql(purpose, schools)
        params += school_ids
        joins += f" LEFT JOIN ({flags}) st ON st.pupil_id = p.id"
        no = "st.refused = 0 AND st.withdrawn = 0"
        counts = f"""SUM(CASE WHEN {no} AND st.given = 1 THEN 1 ELSE 0 END),
               SUM(CASE WHEN {no} AND st.given = 1 AND st.given_current = 0 THEN 1 ELSE 0 END),
               SUM(CASE WHEN st.refused = 1 THEN 1 ELSE 0 END),
               SUM(CASE WHEN st.refused = 0 AND st.withdrawn = 1 THEN 1 ELSE 0 END),
               SUM(CASE WHEN {no} AND st.given = 0 AND st.lapsed = 1 THEN 1 ELSE 0 END)"""
    archived = "" if include_archived else " AND p.archived_at IS NULL"
    sql = f"""
        SELECT {key}, COUNT(*), {counts}
        FROM {_table(Pupil)} p{joins}
        WHERE p.school_id IN ({schools}) AND p.left_on IS NULL{archived}
        GROUP BY {key}"""  # noqa: S608 (names from the models, values as parameters)
    with connection.cursor() as cursor:
        cursor.execute(sql, params + school_ids)
        return {row[0]: Figures(*(int(n or 0) for n in row[1:])) for row in cursor.fetchall()}
