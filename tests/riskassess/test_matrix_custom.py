"""A 5×5 matrix with the organisation admin's own labels and bands (`Matrix.custom`): every cell, and every
refusal with its message (pure: no database)."""

import pytest

from riskassess.matrix import BAND_KEYS, STANDARD_5X5, Matrix, MatrixError

LIKELIHOOD = ("Very unlikely", "Unlikely", "Could happen", "Likely", "Expected")
SEVERITY = ("Trivial", "Minor", "Moderate", "Serious", "Grave")
# Three bands of the admin's own: Acceptable 1–5, Watch 6–12, Act now 15–25.
THREE = [("Acceptable", 5), ("Watch", 12), ("Act now", 25)]


def custom(**overrides) -> Matrix:
    values = {"size": 5, "likelihood_labels": LIKELIHOOD, "severity_labels": SEVERITY, "bands": THREE}
    return Matrix.custom(**{**values, **overrides})


def expected_band(rating: int) -> tuple[str, str]:
    if rating <= 5:
        return "low", "Acceptable"
    if rating <= 12:
        return "medium", "Watch"
    return "high", "Act now"


@pytest.mark.parametrize(("likelihood", "severity"), [(ll, s) for ll in range(1, 6) for s in range(1, 6)])
def test_every_cell_of_a_custom_five_by_five_matrix(likelihood, severity):
    matrix = custom()
    rating = matrix.rating(likelihood, severity)
    assert rating == likelihood * severity
    band = matrix.band(rating)
    assert (band.key, band.label) == expected_band(rating)
    assert matrix.band_index(rating) == ["low", "medium", "high"].index(band.key)


def test_the_custom_labels_are_kept_trimmed_and_round_trip_through_the_snapshot_form():
    matrix = custom(likelihood_labels=[f"  {label} " for label in LIKELIHOOD])
    assert matrix.likelihood_labels == LIKELIHOOD and matrix.severity_label(5) == "Grave"
    assert Matrix.from_dict(matrix.as_dict()) == matrix
    assert [(band.label, low, high) for band, low, high in matrix.band_ranges()] == [
        ("Acceptable", 1, 5), ("Watch", 6, 12), ("Act now", 13, 25)]


@pytest.mark.parametrize("count", [2, 3, 4, 5])
def test_band_keys_are_fixed_by_the_number_of_bands_lowest_first(count):
    uppers = [4, 9, 16, 20, 25][-count:] if count < 5 else [2, 5, 10, 16, 25]
    bands = [(f"Band {n}", upper) for n, upper in enumerate(uppers, start=1)]
    matrix = custom(bands=bands)
    assert tuple(band.key for band in matrix.bands) == BAND_KEYS[count]
    assert matrix.band(25).key == ("very_high" if count >= 4 else "high")
    assert matrix.band(1).key == ("very_low" if count == 5 else "low")


def test_the_standard_five_by_five_is_a_custom_matrix_with_its_own_values():
    assert custom(likelihood_labels=STANDARD_5X5.likelihood_labels, severity_labels=STANDARD_5X5.severity_labels,
                  bands=[(b.label, b.upper) for b in STANDARD_5X5.bands]) == STANDARD_5X5


def errors_of(**overrides) -> dict[str, list[str]]:
    with pytest.raises(MatrixError) as raised:
        custom(**overrides)
    return raised.value.errors


def test_an_empty_label_is_refused_beside_its_field():
    errors = errors_of(likelihood_labels=("Very unlikely", " ", "Could happen", "Likely", "Expected"))
    assert errors == {"likelihood_2": ["Give likelihood level 2 a label."]}


def test_a_duplicate_label_is_refused_whatever_its_case():
    errors = errors_of(severity_labels=("Trivial", "Minor", "minor", "Serious", "Grave"))
    assert errors == {"severity_3": ["“minor” is already the label of severity level 2: each level needs its own."]}


def test_a_label_too_long_is_refused():
    assert "40 characters" in errors_of(severity_labels=("x" * 41, *SEVERITY[1:]))["severity_1"][0]


def test_duplicate_band_labels_are_refused():
    errors = errors_of(bands=[("Low", 5), ("low", 12), ("High", 25)])
    assert errors == {"band_label_2": ["“low” is already the label of band 1: each band needs its own."]}


def test_bounds_that_do_not_rise_are_refused():
    errors = errors_of(bands=[("Low", 12), ("Medium", 12), ("High", 25)])
    assert errors == {"band_upper_2": ["Band 2's highest rating (12) must be above band 1's (12): bands rise."]}


def test_the_last_band_must_reach_twenty_five():
    errors = errors_of(bands=[("Low", 5), ("Medium", 12), ("High", 20)])
    assert errors == {"band_upper_3": ["The last band must reach the highest rating, 25."]}


def test_a_band_that_holds_no_cell_is_refused():
    # 7 is no product of two scores from 1 to 5: a band 7–7 would always be empty.
    errors = errors_of(bands=[("Low", 6), ("Odd", 7), ("High", 25)])
    assert "holds no cell" in errors["band_upper_2"][0]


@pytest.mark.parametrize("bands", [[("Everything", 25)], [(f"B{n}", n * 4) for n in range(1, 6)] + [("Top", 25)]])
def test_from_two_to_five_bands(bands):
    assert errors_of(bands=bands)["bands"][0].startswith("Give from 2 to 5 bands")


def test_a_missing_label_and_bound_are_both_reported_at_once():
    errors = errors_of(likelihood_labels=("", *LIKELIHOOD[1:]), bands=[("Low", 5), ("", None), ("High", 25)])
    assert set(errors) == {"likelihood_1", "band_label_2", "band_upper_2"}


def test_a_bound_off_the_matrix_is_refused():
    assert errors_of(bands=[("Low", 0), ("High", 25)])["band_upper_1"] == [
        "Band 1's highest rating must be from 1 to 25."]


def test_a_three_by_three_cannot_have_five_labels():
    assert "Give 3 likelihood labels" in errors_of(size=3)["likelihood"][0]
