"""Rating and band for every cell of both matrices (issue 4's first test)."""

import pytest

from riskassess.matrix import SEED_3X3, STANDARD_5X5, Matrix

# The seed: low 1–2, medium 3–5, high 6–9.
SEED_BANDS = {1: "low", 2: "low", 3: "medium", 4: "medium", 6: "high", 9: "high"}
FIVE_BANDS = {1: "low", 2: "low", 3: "low", 4: "low", 5: "medium", 6: "medium", 8: "medium", 9: "medium",
              10: "high", 12: "high", 15: "high", 16: "high", 20: "very_high", 25: "very_high"}


@pytest.mark.parametrize(("likelihood", "severity"), [(ll, s) for ll in range(1, 4) for s in range(1, 4)])
def test_every_cell_of_the_seed_matrix(likelihood, severity):
    rating = SEED_3X3.rating(likelihood, severity)
    assert rating == likelihood * severity
    assert SEED_3X3.band(rating).key == SEED_BANDS[rating]


@pytest.mark.parametrize(("likelihood", "severity"), [(ll, s) for ll in range(1, 6) for s in range(1, 6)])
def test_every_cell_of_the_five_by_five_matrix(likelihood, severity):
    rating = STANDARD_5X5.rating(likelihood, severity)
    assert rating == likelihood * severity
    assert STANDARD_5X5.band(rating).key == FIVE_BANDS[rating]


def test_the_seed_labels_are_the_forms():
    assert SEED_3X3.likelihood_labels == ("Remote", "Possible", "Probable")
    assert SEED_3X3.severity_labels == ("Minor", "Serious", "Severe")


@pytest.mark.parametrize("score", [0, 4, -1, None, "2"])
def test_a_score_off_the_matrix_is_refused(score):
    with pytest.raises(ValueError, match="from 1 to 3"):
        SEED_3X3.rating(score, 1)


def test_a_matrix_round_trips_through_its_snapshot_form():
    assert Matrix.from_dict(STANDARD_5X5.as_dict()) == STANDARD_5X5


def test_bands_must_cover_every_rating():
    with pytest.raises(ValueError, match="highest rating"):
        Matrix(size=3, likelihood_labels=("a", "b", "c"), severity_labels=("a", "b", "c"),
               bands=SEED_3X3.bands[:2])
