"""The likelihood × severity matrix: pure Python, so every cell is tested without a database.

An organisation uses the seed's 3×3 matrix unless its admin chooses a 5×5 one (`RiskMatrix`) with its own
labels and bands (`Matrix.custom`). A rating is always computed here from the two scores, never typed, and
its band is looked up from the matrix's bands (each band covers the ratings up to its `upper` bound).

Band keys are fixed by the number of bands (`BAND_KEYS`), never derived from the labels an admin types: the
pages colour a band by its key (the colour only repeats the band's label, which is always printed), so two
to five bands always have a colour, from the lowest to the highest.
"""

from dataclasses import dataclass

# The key of each band, lowest first, by the number of bands.
BAND_KEYS: dict[int, tuple[str, ...]] = {
    2: ("low", "high"),
    3: ("low", "medium", "high"),
    4: ("low", "medium", "high", "very_high"),
    5: ("very_low", "low", "medium", "high", "very_high"),
}
MIN_BANDS, MAX_BANDS = min(BAND_KEYS), max(BAND_KEYS)
LABEL_MAX_LENGTH = 40


class MatrixError(ValueError):
    """What is wrong with a proposed matrix, as messages for people: {field: [message, ...]}, where a field is
    "likelihood", "severity", "bands", or "likelihood_2", "band_label_3", "band_upper_1"… for one entry."""

    def __init__(self, errors: dict[str, list[str]]):
        self.errors = errors
        super().__init__(" ".join(message for messages in errors.values() for message in messages))


@dataclass(frozen=True)
class Band:
    key: str
    label: str
    upper: int  # the highest rating in this band


@dataclass(frozen=True)
class Matrix:
    size: int
    likelihood_labels: tuple[str, ...]
    severity_labels: tuple[str, ...]
    bands: tuple[Band, ...]

    def __post_init__(self):
        if len(self.likelihood_labels) != self.size or len(self.severity_labels) != self.size:
            raise ValueError("A matrix needs one label per likelihood and per severity level.")
        uppers = [band.upper for band in self.bands]
        if uppers != sorted(uppers) or not uppers or uppers[-1] != self.size * self.size:
            raise ValueError("Bands must rise and the last must reach the highest rating.")
        if len(set(uppers)) != len(uppers) or len({band.key for band in self.bands}) != len(self.bands):
            raise ValueError("Each band needs its own key and its own upper bound.")

    @classmethod
    def custom(cls, *, size: int, likelihood_labels, severity_labels, bands) -> "Matrix":
        """A matrix an organisation admin defines: `bands` is [(label, upper), ...] lowest first. Every problem
        is collected and raised at once as a `MatrixError`, so a form can show them all beside their fields."""
        errors: dict[str, list[str]] = {}

        def add(field: str, message: str) -> None:
            errors.setdefault(field, []).append(message)

        if size not in (3, 5):
            raise MatrixError({"size": ["Choose a 3×3 or a 5×5 matrix."]})
        for axis, labels in (("likelihood", likelihood_labels), ("severity", severity_labels)):
            labels = [str(label or "").strip() for label in labels]
            if len(labels) != size:
                add(axis, f"Give {size} {axis} labels, one per level.")
                continue
            seen: dict[str, int] = {}
            for level, label in enumerate(labels, start=1):
                if not label:
                    add(f"{axis}_{level}", f"Give {axis} level {level} a label.")
                elif len(label) > LABEL_MAX_LENGTH:
                    add(f"{axis}_{level}", f"Keep {axis} level {level}'s label to {LABEL_MAX_LENGTH} characters.")
                elif label.casefold() in seen:
                    add(f"{axis}_{level}", f"“{label}” is already the label of {axis} level "
                                           f"{seen[label.casefold()]}: each level needs its own.")
                else:
                    seen[label.casefold()] = level
        bands = [(str(label or "").strip(), upper) for label, upper in bands]
        highest = size * size
        ratings = sorted({lk * sv for lk in range(1, size + 1) for sv in range(1, size + 1)})
        if not MIN_BANDS <= len(bands) <= MAX_BANDS:
            add("bands", f"Give from {MIN_BANDS} to {MAX_BANDS} bands; there are {len(bands)}.")
        seen_bands: dict[str, int] = {}
        previous = 0
        for number, (label, upper) in enumerate(bands, start=1):
            if not label:
                add(f"band_label_{number}", f"Give band {number} a label.")
            elif len(label) > LABEL_MAX_LENGTH:
                add(f"band_label_{number}", f"Keep band {number}'s label to {LABEL_MAX_LENGTH} characters.")
            elif label.casefold() in seen_bands:
                add(f"band_label_{number}", f"“{label}” is already the label of band {seen_bands[label.casefold()]}: "
                                            "each band needs its own.")
            else:
                seen_bands[label.casefold()] = number
            if not isinstance(upper, int) or isinstance(upper, bool):
                add(f"band_upper_{number}", f"Give band {number} its highest rating, a whole number.")
                previous = None
                continue
            if not 1 <= upper <= highest:
                add(f"band_upper_{number}", f"Band {number}'s highest rating must be from 1 to {highest}.")
            elif previous is not None and upper <= previous:
                add(f"band_upper_{number}", f"Band {number}'s highest rating ({upper}) must be above band "
                                            f"{number - 1}'s ({previous}): bands rise.")
            elif previous is not None and not any(previous < rating <= upper for rating in ratings):
                add(f"band_upper_{number}", f"Band {number} (ratings {previous + 1} to {upper}) holds no cell: no "
                                            "likelihood × severity gives those ratings. Raise its highest rating.")
            previous = upper
        last = f"band_upper_{len(bands)}"
        if bands and bands[-1][1] != highest and isinstance(bands[-1][1], int) and last not in errors:
            add(last, f"The last band must reach the highest rating, {highest}.")
        if errors:
            raise MatrixError(errors)
        keys = BAND_KEYS[len(bands)]
        return cls(
            size=size,
            likelihood_labels=tuple(str(label).strip() for label in likelihood_labels),
            severity_labels=tuple(str(label).strip() for label in severity_labels),
            bands=tuple(Band(key, label, upper) for key, (label, upper) in zip(keys, bands, strict=True)),
        )

    def band_index(self, rating: int) -> int:
        """0 for the lowest band: for colouring by position."""
        return self.bands.index(self.band(rating))

    def band_ranges(self) -> list[tuple[Band, int, int]]:
        """(band, lowest rating, highest rating) of each band, lowest first."""
        ranges, lower = [], 1
        for band in self.bands:
            ranges.append((band, lower, band.upper))
            lower = band.upper + 1
        return ranges

    @property
    def levels(self) -> range:
        return range(1, self.size + 1)

    def check(self, score: int) -> int:
        if score not in self.levels:
            raise ValueError(f"A score on this matrix is from 1 to {self.size}, not {score!r}.")
        return score

    def rating(self, likelihood: int, severity: int) -> int:
        return self.check(likelihood) * self.check(severity)

    def band(self, rating: int) -> Band:
        if not 1 <= rating <= self.size * self.size:
            raise ValueError(f"A rating on this matrix is from 1 to {self.size * self.size}, not {rating!r}.")
        return next(band for band in self.bands if rating <= band.upper)

    def likelihood_label(self, score: int) -> str:
        return self.likelihood_labels[self.check(score) - 1]

    def severity_label(self, score: int) -> str:
        return self.severity_labels[self.check(score) - 1]

    def as_dict(self) -> dict:
        """For snapshots: the matrix an approved assessment was scored on travels with it."""
        return {
            "size": self.size,
            "likelihood": list(self.likelihood_labels),
            "severity": list(self.severity_labels),
            "bands": [{"key": b.key, "label": b.label, "upper": b.upper} for b in self.bands],
        }

    @classmethod
    def from_dict(cls, data: dict) -> "Matrix":
        return cls(
            size=data["size"],
            likelihood_labels=tuple(data["likelihood"]),
            severity_labels=tuple(data["severity"]),
            bands=tuple(Band(b["key"], b["label"], b["upper"]) for b in data["bands"]),
        )


# The seed's risk classification: likelihood remote 1 / possible 2 / probable 3; severity minor 1 /
# serious 2 / severe 3; rating L × S; low 1–2, medium 3–5, high 6–9.
SEED_3X3 = Matrix(
    size=3,
    likelihood_labels=("Remote", "Possible", "Probable"),
    severity_labels=("Minor", "Serious", "Severe"),
    bands=(Band("low", "Low", 2), Band("medium", "Medium", 5), Band("high", "High", 9)),
)

# The common 5×5 matrix, for organisations that use one.
STANDARD_5X5 = Matrix(
    size=5,
    likelihood_labels=("Rare", "Unlikely", "Possible", "Likely", "Almost certain"),
    severity_labels=("Negligible", "Minor", "Moderate", "Major", "Catastrophic"),
    bands=(Band("low", "Low", 4), Band("medium", "Medium", 9), Band("high", "High", 16),
           Band("very_high", "Very high", 25)),
)
