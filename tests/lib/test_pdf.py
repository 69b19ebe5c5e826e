import shutil
import subprocess

import pytest
from django.template import engines

from lib import pdf


@pytest.fixture
def document(monkeypatch):
    """A two-page document that extends the PDF base, rendered from an in-memory template."""
    template = engines["django"].from_string(
        '{% extends "pdf/base.html" %}{% block running_title %}Test register{% endblock %}'
        "{% block heading %}A long document{% endblock %}"
        "{% block content %}{% for i in rows %}<p>Row {{ i }} &lt;script&gt;</p>{% endfor %}{% endblock %}"
    )
    monkeypatch.setattr(pdf, "render_to_string", lambda name, ctx: template.render(ctx))
    return lambda **ctx: pdf.render_pdf("unused", {"rows": range(120), **ctx})


def _text(pdf_bytes: bytes, tmp_path, *, mode: str = "-layout") -> str:
    assert shutil.which("pdftotext"), "pdftotext (poppler-utils) is needed; .ci/run installs it"
    path = tmp_path / "doc.pdf"
    path.write_bytes(pdf_bytes)
    args = ["pdftotext", mode, str(path), "-"]
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def test_pdf_base_numbers_its_pages_and_repeats_the_running_title(document, tmp_path):
    pages = [page for page in _text(document(), tmp_path).split("\f") if page.strip()]
    assert len(pages) > 1
    for number, page in enumerate(pages, start=1):
        assert f"Page {number} of {len(pages)}" in page
        assert "Test register" in page


def test_draft_documents_carry_a_watermark(document, tmp_path):
    # The watermark is rotated, which pdftotext's layout mode leaves out; read the raw text stream.
    pages = [page for page in _text(document(draft=True), tmp_path, mode="-raw").split("\f") if page.strip()]
    assert len(pages) > 1
    assert all("DRAFT" in page for page in pages)
    assert "DRAFT" not in _text(document(draft=False), tmp_path, mode="-raw")


def test_pdf_rendering_refuses_to_fetch_anything_but_static_files():
    with pytest.raises(ValueError, match="static files"):
        pdf.StaticOnlyFetcher().fetch("http://169.254.169.254/latest/meta-data/")
    with pytest.raises(ValueError):
        pdf.StaticOnlyFetcher().fetch("file:///etc/passwd")


def test_a_running_title_with_quotes_and_braces_prints_literally_on_every_page(monkeypatch, tmp_path):
    # The title reaches the page header as text (string-set), never written into a stylesheet.
    template = engines["django"].from_string(
        '{% extends "pdf/base.html" %}{% block running_title %}{{ title }}{% endblock %}'
        "{% block content %}{% for i in rows %}<p>Row {{ i }}</p>{% endfor %}{% endblock %}"
    )
    monkeypatch.setattr(pdf, "render_to_string", lambda name, ctx: template.render(ctx))
    title = 'Owls & "Foxes" } @page { size: A3 }'
    pages = [p for p in _text(pdf.render_pdf("unused", {"rows": range(120), "title": title}), tmp_path).split("\f")
             if p.strip()]
    assert len(pages) > 1
    assert all(title in page for page in pages[1:])
