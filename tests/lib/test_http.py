from django.http import HttpResponse

from lib.http import as_download


def test_a_download_is_saved_not_shown_not_cached_and_its_name_cannot_break_the_header():
    response = as_download(HttpResponse(b"x"), 'register "Owls"\r\nSet-Cookie: a=b.csv')
    disposition = response["Content-Disposition"]
    assert disposition.startswith("attachment; filename")
    assert "\r" not in disposition and "\n" not in disposition and '"Owls"' not in disposition
    assert response["Cache-Control"] == "no-store"


def test_a_name_beyond_ascii_is_kept_for_browsers_that_read_it():
    response = as_download(HttpResponse(b"x"), "données-élèves.pdf")
    assert "filename*=utf-8''donn%C3%A9es-%C3%A9l%C3%A8ves.pdf" in response["Content-Disposition"]
