"""Names on a teacher's list: the first name, and as much more as it takes to tell two children apart."""

from lib.names import NameParts, distinct_names


def test_a_first_name_nobody_else_has_stays_alone():
    assert distinct_names({1: NameParts("Aoife", "Corrigan"), 2: NameParts("Ben", "Cowan")}) == {1: "Aoife", 2: "Ben"}


def test_surnames_that_differ_only_in_later_letters_show_enough_letters():
    names = distinct_names({1: NameParts("Aoife", "Corrigan"), 2: NameParts("Aoife", "Cowan"),
                            3: NameParts("Aoife", "Murphy"), 4: NameParts("Ben", "Corrigan")})
    assert names == {1: "Aoife Cor.", 2: "Aoife Cow.", 3: "Aoife M.", 4: "Ben"}


def test_first_names_are_compared_ignoring_case_and_spaces():
    names = distinct_names({1: NameParts("aoife ", "Corrigan"), 2: NameParts("Aoife", "Cowan")})
    assert names == {1: "aoife Cor.", 2: "Aoife Cow."}


def test_a_surname_that_begins_another_is_shown_whole():
    assert distinct_names({1: NameParts("Sam", "Lee"), 2: NameParts("Sam", "Lees")}) == {1: "Sam Lee", 2: "Sam Lees"}
    assert distinct_names({1: NameParts("Sam", "Lee"), 2: NameParts("Sam", "Leeson")}) == {
        1: "Sam Lee", 2: "Sam Lees."}


def test_identical_full_names_add_the_year_group_when_it_differs():
    names = distinct_names({1: NameParts("Aoife", "Corrigan", ("Year 4", "MIS id 1")),
                            2: NameParts("Aoife", "Corrigan", ("Year 5", "MIS id 2"))})
    assert names == {1: "Aoife Corrigan (Year 4)", 2: "Aoife Corrigan (Year 5)"}


def test_identical_full_names_in_the_same_year_add_the_mis_id():
    names = distinct_names({1: NameParts("Aoife", "Corrigan", ("Year 4", "MIS id 1")),
                            2: NameParts("Aoife", "Corrigan", ("Year 4", "MIS id 2")),
                            3: NameParts("Aoife", "Cowan", ("Year 4", "MIS id 3"))})
    assert names == {1: "Aoife Corrigan (MIS id 1)", 2: "Aoife Corrigan (MIS id 2)", 3: "Aoife Cow."}


def test_a_shared_first_name_without_a_surname_stays_as_it_is():
    assert distinct_names({1: NameParts("Aoife", ""), 2: NameParts("Aoife", "Cowan")}) == {1: "Aoife", 2: "Aoife C."}
