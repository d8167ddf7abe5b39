"""The HTTP edge: request/response schemas and the limits every request passes."""
