"""What the product does, as calls that know no HTTP, no Redis keys and no SQL: bidding,
opening, closing, keeping every offer (durability), accounts, applications, results, the
operator. Each returns its result or a ``Refusal`` (``usecases.outcomes``); the gateway renders
one and maps the other to a problem. ``Portal`` holds them all for one process; the
composition root (``gateway/bootstrap.py``) builds it."""
