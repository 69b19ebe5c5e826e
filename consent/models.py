"""The registry: pupils, their guardians and their groups, per school.

Consent itself (purposes, notices, events and the derived status row) is built on top of these.
"""

from django.db import models

from schools.models import School


class Group(models.Model):
    """A class, a year group or the whole school: what a video session is scheduled for."""

    class Kind(models.TextChoices):
        CLASS = "class", "Class"
        YEAR = "year", "Year group"
        WHOLE_SCHOOL = "whole_school", "Whole school"
        OTHER = "other", "Other"

    school = models.ForeignKey(School, on_delete=models.CASCADE, related_name="groups")
    name = models.CharField(max_length=120)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.CLASS)
    mis_id = models.CharField("MIS id", max_length=64, blank=True)
    pupils = models.ManyToManyField("Pupil", related_name="groups", blank=True)

    class Meta:
        ordering = ["school__name", "name"]
        constraints = [
            models.UniqueConstraint(fields=["school", "name"], name="group_name_unique_in_school"),
        ]

    def __str__(self) -> str:
        return self.name


class Pupil(models.Model):
    school = models.ForeignKey(School, on_delete=models.CASCADE, related_name="pupils")
    mis_id = models.CharField("MIS id", max_length=64)
    first_name = models.CharField(max_length=100)
    last_name = models.CharField(max_length=100)
    year_group = models.CharField(max_length=40, blank=True)
    left_on = models.DateField(null=True, blank=True, help_text="Set when a full import no longer lists them.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["last_name", "first_name"]
        constraints = [
            models.UniqueConstraint(fields=["school", "mis_id"], name="pupil_mis_id_unique_in_school"),
        ]

    def __str__(self) -> str:
        return f"{self.first_name} {self.last_name}"


class Guardian(models.Model):
    """A parent or carer. No account: they act through personal links emailed to them."""

    school = models.ForeignKey(School, on_delete=models.CASCADE, related_name="guardians")
    mis_id = models.CharField("MIS id", max_length=64)
    first_name = models.CharField(max_length=100, blank=True)
    last_name = models.CharField(max_length=100)
    email = models.EmailField(blank=True)
    phone = models.CharField(max_length=40, blank=True)
    pupils = models.ManyToManyField(Pupil, through="Guardianship", related_name="guardians")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["last_name", "first_name"]
        constraints = [
            models.UniqueConstraint(fields=["school", "mis_id"], name="guardian_mis_id_unique_in_school"),
        ]
        indexes = [models.Index(fields=["school", "email"], name="guardian_school_email")]

    def __str__(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()


class Guardianship(models.Model):
    class Relationship(models.TextChoices):
        MOTHER = "mother", "Mother"
        FATHER = "father", "Father"
        CARER = "carer", "Carer"
        GUARDIAN = "guardian", "Legal guardian"
        OTHER = "other", "Other"

    guardian = models.ForeignKey(Guardian, on_delete=models.CASCADE, related_name="guardianships")
    pupil = models.ForeignKey(Pupil, on_delete=models.CASCADE, related_name="guardianships")
    relationship = models.CharField(max_length=20, choices=Relationship.choices, default=Relationship.OTHER)
    parental_responsibility = models.BooleanField(default=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["guardian", "pupil"], name="guardianship_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.guardian} ({self.get_relationship_display()}) of {self.pupil}"
