from django import forms
from django.db.models import QuerySet

from .models import OutboxMessage


class OutboxFilterForm(forms.Form):
    status = forms.ChoiceField(
        required=False, choices=[("", "Any status"), *OutboxMessage.Status.choices]
    )
    q = forms.CharField(label="Recipient", required=False, max_length=254, help_text="Email address, or part of it.")

    def apply(self, messages: QuerySet) -> QuerySet:
        if self.cleaned_data["status"]:
            messages = messages.filter(status=self.cleaned_data["status"])
        if self.cleaned_data["q"]:
            messages = messages.filter(recipient__icontains=self.cleaned_data["q"].strip())
        return messages
