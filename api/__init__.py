"""HTTP layer: FastAPI app, routers per domain, webhooks, websockets, inbox and widget pages."""
