"""The service's routers, one module per area (all mounted by :func:`recsys.service.app.create_app`)."""

from recsys.service.routers import admin, catalogue, deals, events, health, recommendations

ROUTERS = (recommendations.router, deals.router, events.router, catalogue.router, admin.router, health.router)

__all__ = ["ROUTERS"]
