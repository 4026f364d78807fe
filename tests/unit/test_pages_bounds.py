"""The pages' bodies: forms (application/x-www-form-urlencoded) and nothing else, small; the
JSON API's rules unchanged."""

from __future__ import annotations

from gateway.bounds import BodyLimits, media_type_ok
from gateway.pages.paths import is_page

FORM = "application/x-www-form-urlencoded"


def test_pages_take_forms_only_and_the_api_keeps_json() -> None:
    for path in ("/desk/login", "/desk/rounds/rnd_1/offers", "/lang", "/desk", "/operator",
                 "/operator/banks/bnk_1/users"):
        assert is_page(path)
        assert media_type_ok(path, FORM + "; charset=utf-8")
        assert not media_type_ok(path, "application/json")
        assert not media_type_ok(path, "text/plain")  # a cross-site form's type
        assert not media_type_ok(path, "multipart/form-data; boundary=x")
    for path in ("/v1/bank/rounds/rnd_1/offers", "/v1/exporter/login", "/desktop", "/language",
                 "/operators", "/v1/admin/operators"):
        assert not is_page(path)
        assert media_type_ok(path, "application/json")
        assert not media_type_ok(path, FORM)
    assert media_type_ok("/v1/oauth/token", FORM)


def test_a_pages_form_is_small() -> None:
    limits = BodyLimits()
    assert limits.max_body_page <= limits.max_body_public < limits.max_body
