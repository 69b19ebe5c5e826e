"""The upload form of the MIS import pages."""

from django import forms

from .imports import max_import_bytes
from .models import ImportRun


def megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


class ImportUploadForm(forms.Form):
    file = forms.FileField(label="File", widget=forms.FileInput(attrs={"accept": ".csv,.txt,.zip"}))
    file_format = forms.ChoiceField(
        label="Format", choices=ImportRun.Format.choices, initial=ImportRun.Format.CSV, widget=forms.RadioSelect,
    )
    full_import = forms.BooleanField(
        label="This file lists every pupil on roll (a full import)", required=False,
        help_text="Pupils in Gatehouse who are not in the file are then marked as left, with today's date. They are "
        "not deleted: their consent records stay, and they come back if a later file lists them again. Leave this "
        "unticked when the file holds only some pupils, such as one class or this term's new starters.",
    )
    org_sourced_id = forms.CharField(
        label="This school's sourcedId in the bundle (OneRoster only, optional)", required=False, max_length=64,
        help_text="Only needed when the bundle holds several schools: the school's sourcedId in orgs.csv.",
    )

    def __init__(self, *args, school, **kwargs):
        super().__init__(*args, **kwargs)
        self.school = school
        limit = max_import_bytes()
        self.fields["file"].help_text = f"At most {megabytes(limit)}."

    def clean_file(self):
        upload = self.cleaned_data["file"]
        limit = max_import_bytes()
        # Refused before reading it into memory; `read_roster` checks the bytes again.
        if upload.size > limit:
            raise forms.ValidationError(
                f"The file is {megabytes(upload.size)}; the largest file we accept is {megabytes(limit)}. "
                "Export fewer columns, or ask your administrator to raise the limit."
            )
        return upload

    def clean_org_sourced_id(self) -> str:
        return self.cleaned_data["org_sourced_id"].strip()

    def clean(self):
        cleaned = super().clean()
        upload, file_format = cleaned.get("file"), cleaned.get("file_format")
        if upload is None or not file_format:
            return cleaned
        name = upload.name.lower()
        if file_format == ImportRun.Format.CSV and name.endswith(".zip"):
            self.add_error("file", "This is a zip file. For a OneRoster bundle, choose “OneRoster 1.2 bundle” as "
                                   "the format; for an MIS export, upload the CSV itself.")
        elif file_format == ImportRun.Format.ONEROSTER and name.endswith((".csv", ".txt")):
            self.add_error("file", "A OneRoster bundle is a zip of several CSV files. For a single CSV exported from "
                                   "your MIS, choose “MIS export (CSV)” as the format.")
        if file_format != ImportRun.Format.ONEROSTER:
            cleaned["org_sourced_id"] = ""
        return cleaned

    def read(self) -> bytes:
        upload = self.cleaned_data["file"]
        upload.seek(0)
        return upload.read()
