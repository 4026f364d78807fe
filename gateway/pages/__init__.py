"""The web pages (issue #8): server-rendered Jinja2 templates (``gateway/templates``), a little
JavaScript of our own for the live parts (``gateway/static``), the gettext catalogues
(``gateway/locales``). Served by the ``api`` role beside the HTTP API (``routes.PAGES``); the
live parts use the ``stream`` role's WebSocket like any client. See docs/PAGES.md."""
