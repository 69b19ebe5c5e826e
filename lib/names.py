"""Children's names as a teacher reads them on a list: the first name alone, unless two children would look the
same. Then enough of the surname tells them apart ("Aoife Cor." and "Aoife Cow."), and when the full names are
the same too, something the school's staff already see on the registry (the year group, else the MIS id).
"""

from collections import defaultdict
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import TypeVar

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class NameParts:
    first: str
    last: str
    # What tells apart two children with the same full name, in order of preference, each already in words
    # ("Year 4", "MIS id 4412"); an empty string where it is not known.
    tie_breakers: tuple[str, ...] = ()


def _common_prefix(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _surname_part(last: str, others: list[str]) -> str:
    """The shortest start of `last` that no other surname of `others` begins with: "C." when no other starts
    with C, "Cor." beside "Cowan"; the whole surname when another one starts with all of it ("Lee" / "Lees.")."""
    key = last.casefold()
    length = 1 + max((_common_prefix(key, other.casefold()) for other in others), default=0)
    if length >= len(last):
        return last
    return f"{last[:length]}."


def _tie_breaker(parts: NameParts, twins: list[NameParts]) -> str:
    """The first tie-breaker whose values differ among children with the same full name."""
    for index, value in enumerate(parts.tie_breakers):
        values = {t.tie_breakers[index] if index < len(t.tie_breakers) else "" for t in twins}
        if value and len(values) == len(twins):
            return value
    return ""


def distinct_names(people: Mapping[K, NameParts]) -> dict[K, str]:
    """Every person's name on a list where no two may look the same (compared ignoring case)."""
    by_first: dict[str, list[K]] = defaultdict(list)
    for key, parts in people.items():
        by_first[parts.first.strip().casefold()].append(key)
    names = {}
    for keys in by_first.values():
        for key in keys:
            parts = people[key]
            first = parts.first.strip()
            if len(keys) == 1 or not parts.last.strip():
                names[key] = first
                continue
            last = parts.last.strip()
            same_full = [people[k] for k in keys if people[k].last.strip().casefold() == last.casefold()]
            others = [people[k].last.strip() for k in keys
                      if k != key and people[k].last.strip().casefold() != last.casefold()]
            if len(same_full) > 1:
                extra = _tie_breaker(parts, same_full)
                names[key] = f"{first} {last} ({extra})" if extra else f"{first} {last}"
            else:
                names[key] = f"{first} {_surname_part(last, others)}"
    return names
