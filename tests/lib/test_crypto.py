import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection

from lib import crypto
from outbox.models import OutboxMessage
from outbox.services import email_queue

pytestmark = pytest.mark.django_db


def _raw_body(pk: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT body_text FROM outbox_outboxmessage WHERE id = %s", [pk])
        return cursor.fetchone()[0]


def test_rotating_keys_re_encrypts_stored_values_under_the_new_key(settings, personas):
    old_key = settings.FIELD_ENCRYPTION_KEYS[0]
    message = email_queue(template="test-message", to="parent@example.net", context={}, school=personas.school)
    plain = OutboxMessage.objects.get(pk=message.pk).body_text
    new_key = Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [new_key, old_key]
    call_command("rotate_encryption_keys")
    assert Fernet(new_key).decrypt(_raw_body(message.pk).encode()).decode() == plain
    settings.FIELD_ENCRYPTION_KEYS = [new_key]  # the old key can now be dropped
    assert OutboxMessage.objects.get(pk=message.pk).body_text == plain


def test_a_value_under_an_unknown_key_is_refused_loudly(settings):
    token = Fernet(Fernet.generate_key()).encrypt(b"secret").decode()
    with pytest.raises(ValueError, match="FIELD_ENCRYPTION_KEYS"):
        crypto.decrypt(token)


def test_encrypted_field_keeps_empty_values_empty():
    field = crypto.EncryptedTextField()
    assert field.get_prep_value("") == ""
    assert field.from_db_value("", None, None) == ""
