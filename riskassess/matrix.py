"""The likelihood × severity matrix: pure Python, so every cell is tested without a database.

An organisation uses the seed's 3×3 matrix unless its admin chooses a 5×5 one (`RiskMatrix`). A rating
is always computed here from the two scores, never typed, and its band is looked up from the matrix's
bands (each band covers the ratings up to its `upper` bound).
"""

from dataclasses import dataclass


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
