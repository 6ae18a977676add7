"""The operators' web console: server-rendered pages (Jinja2) served by the gateway.

Every page acts through the operator API's own service functions (``api_gateway.operator_api``), on
the signed-in operator, with the same idempotency and the same audit entries; only the way in
(a session cookie and a form with its CSRF token and one-time key) and the way out (HTML pages,
errors beside the fields) are the console's. Forms work without JavaScript; ``static/console.js``
adds live refresh and copy buttons.
"""
