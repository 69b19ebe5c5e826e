"""The organisation admin's matrix form: the seed's 3×3 (fixed), or a 5×5 with five likelihood labels, five
severity labels and two to five bands (each a label and its highest rating). The form only gathers the
values: `Matrix.custom` checks them, and its messages are shown beside the fields they are about."""

from django import forms

from .matrix import LABEL_MAX_LENGTH, MAX_BANDS, SEED_3X3, STANDARD_5X5, Matrix, MatrixError

SIZE = 5
SLOTS = range(1, MAX_BANDS + 1)
LEVELS = range(1, SIZE + 1)


class MatrixForm(forms.Form):
    size = forms.TypedChoiceField(
        label="Matrix", coerce=int, widget=forms.RadioSelect,
        choices=[(3, "3×3: the seed's matrix (remote, possible, probable × minor, serious, severe; its bands)"),
                 (5, "5×5: five levels each way, with the labels and bands below")],
        error_messages={"required": "Choose the 3×3 or the 5×5 matrix.",
                        "invalid_choice": "Choose the 3×3 or the 5×5 matrix."},
    )

    def __init__(self, *args, current: Matrix, **kwargs):
        five = current if current.size == SIZE else STANDARD_5X5
        initial = {"size": current.size}
        for level in LEVELS:
            initial[f"likelihood_{level}"] = five.likelihood_labels[level - 1]
            initial[f"severity_{level}"] = five.severity_labels[level - 1]
        for slot, band in zip(SLOTS, five.bands, strict=False):
            initial[f"band_label_{slot}"] = band.label
            initial[f"band_upper_{slot}"] = band.upper
        kwargs.setdefault("initial", initial)
        super().__init__(*args, **kwargs)
        text = {"required": False, "max_length": LABEL_MAX_LENGTH * 4}
        for axis in ("likelihood", "severity"):
            for level in LEVELS:
                self.fields[f"{axis}_{level}"] = forms.CharField(label=f"{axis.capitalize()} {level}", **text)
        for slot in SLOTS:
            self.fields[f"band_label_{slot}"] = forms.CharField(label=f"Band {slot}: label", **text)
            self.fields[f"band_upper_{slot}"] = forms.IntegerField(
                label=f"Band {slot}: highest rating", required=False,
                error_messages={"invalid": f"Give band {slot} its highest rating, a whole number."})
        self.matrix: Matrix | None = None

    def likelihood_fields(self):
        return [self[f"likelihood_{level}"] for level in LEVELS]

    def severity_fields(self):
        return [self[f"severity_{level}"] for level in LEVELS]

    def band_fields(self):
        return [(slot, self[f"band_label_{slot}"], self[f"band_upper_{slot}"]) for slot in SLOTS]

    def clean(self):
        data = super().clean()
        size = data.get("size")
        if size == 3:
            self.matrix = SEED_3X3
            return data
        if size != SIZE or self.errors:
            return data
        filled = [slot for slot in SLOTS
                  if (data.get(f"band_label_{slot}") or "").strip() or data.get(f"band_upper_{slot}") is not None]
        bands = [((data.get(f"band_label_{slot}") or ""), data.get(f"band_upper_{slot}"))
                 for slot in SLOTS if filled and slot <= filled[-1]]
        try:
            self.matrix = Matrix.custom(
                size=SIZE, likelihood_labels=[data.get(f"likelihood_{level}") for level in LEVELS],
                severity_labels=[data.get(f"severity_{level}") for level in LEVELS], bands=bands,
            )
        except MatrixError as error:
            for name, messages in error.errors.items():
                for message in messages:
                    self.add_error(name if name in self.fields else None, message)
        return data
