"""The dashboard: the pool, its keys, spend and recent calls in web pages served under ``/ui``.

Server-rendered HTML (``string.Template``, everything escaped) with one plain script
(static/app.js) that refreshes each page from its JSON endpoint every 2 s while the tab is
visible. Log in with the master key (actions) or ``DASHBOARD_TOKEN`` (read-only); sessions live
in the store so every gateway worker accepts them. Routes: router/dashboard/routes.py; docs:
docs/dashboard.md.
"""

from router.dashboard.routes import add_routes

__all__ = ["add_routes"]
