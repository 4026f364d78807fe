"""What the schemathesis run's format generators make (tests/e2e/schemathesis_hooks.py), the
server's converters accept: the document's formats and the server agree."""

from __future__ import annotations

import re

from hypothesis import given, settings

from gateway.contract import fields as F
from gateway.contract.openapi import spec
from tests.e2e.schemathesis_hooks import emails, mobiles, national_ids, tax_ids


@settings(max_examples=200, deadline=None)
@given(tax_ids(), national_ids(), mobiles(), emails())
def test_the_generated_formats_are_accepted(tax_id: str, national_id: str, mobile: str,
                                            email: str) -> None:
    schemas = spec()["components"]["schemas"]
    assert F.tax_id(tax_id) == tax_id == F.tax_id_round(tax_id)
    assert re.fullmatch(schemas["TaxId"]["pattern"], tax_id)
    assert F.national_id(national_id) == national_id
    assert re.fullmatch(schemas["NationalId"]["pattern"], national_id)
    assert F.turkish_mobile(mobile) == mobile
    assert F.email_address(email) == email


def test_every_custom_format_of_the_document_has_a_generator() -> None:
    formats = {s.get("format") for s in spec()["components"]["schemas"].values()}
    assert {f for f in formats if f and f.startswith("tr-")} == {
        "tr-tax-id", "tr-national-id", "tr-mobile"}
