import pytest
from django.test import RequestFactory
from django.urls import reverse

from lib.client_ip import client_ip


def _request(remote="10.0.0.1", forwarded=None):
    extra = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    return RequestFactory().get("/", **extra)


def test_without_proxies_the_connection_address_is_the_client(settings):
    settings.TRUSTED_PROXY_COUNT = 0
    assert client_ip(_request(forwarded="203.0.113.9")) == "10.0.0.1"


def test_behind_one_proxy_the_address_it_appended_is_the_client(settings):
    settings.TRUSTED_PROXY_COUNT = 1
    assert client_ip(_request(forwarded="198.51.100.7")) == "198.51.100.7"
    # A client cannot pick its address by sending its own X-Forwarded-For: the proxy appends the real one.
    assert client_ip(_request(forwarded="1.2.3.4, 198.51.100.7")) == "198.51.100.7"


def test_behind_two_proxies_the_second_entry_from_the_right_is_the_client(settings):
    settings.TRUSTED_PROXY_COUNT = 2
    assert client_ip(_request(forwarded="spoofed, 198.51.100.7, 10.1.1.1")) == "198.51.100.7"
    assert client_ip(_request(forwarded="10.1.1.1")) == "10.0.0.1"  # fewer entries than proxies


@pytest.mark.django_db
def test_behind_a_proxy_one_persons_lockout_does_not_lock_out_another(client, settings, personas):
    settings.TRUSTED_PROXY_COUNT = 1
    url = reverse("accounts:login")
    username = personas.teacher.username
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post(url, {"username": username, "password": "wrong"}, REMOTE_ADDR="10.0.0.1",
                    HTTP_X_FORWARDED_FOR="198.51.100.7")
    locked = client.post(url, {"username": username, "password": "wrong"}, REMOTE_ADDR="10.0.0.1",
                         HTTP_X_FORWARDED_FOR="198.51.100.7")
    assert locked.status_code == 429
    other = client.post(url, {"username": username, "password": "correct horse battery staple"},
                        REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.8")
    assert other.status_code == 302
