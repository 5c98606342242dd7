"""The web surface's settings: the server (address, port), its limits, and whose rules web requests follow."""

from __future__ import annotations

from pydantic import BaseModel, Field

DEFAULT_WEB_PORT = 7860
"""The port A1111 clients try first (``http://127.0.0.1:7860``)."""


class WebSettings(BaseModel):
    """``[web]``: the web UI, the native API (``/api/v1``), the A1111-compatible API (``/sdapi/v1``), ``/metrics``."""

    model_config = {"extra": "forbid"}

    enabled: bool = Field(default=True, description="serve the web UI and the APIs")
    host: str = Field(
        default="127.0.0.1",
        min_length=1,
        description="address to bind; anything but 127.0.0.1/localhost exposes the server (put TLS in front)",
    )
    port: int = Field(default=DEFAULT_WEB_PORT, ge=1, le=65535)
    max_body_bytes: int = Field(
        default=32 * 1024 * 1024,
        ge=64 * 1024,
        description="largest request body (base64 images included); larger ones are refused before they are read",
    )
    rules_guild_id: int = Field(
        default=0,
        ge=0,
        description="the Discord server whose blocklist applies to keys made without a server (0: the web's own)",
    )
    metrics_public: bool = Field(default=True, description="serve /metrics without an API key")
    public_url: str = Field(default="", description="the address members reach the web UI at (shown by /apikey)")

    @property
    def address(self) -> str:
        """Where members reach the web UI: ``public_url``, else ``http://host:port``."""
        if self.public_url.strip():
            return self.public_url.strip().rstrip("/")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def local_only(self) -> bool:
        """Whether only this machine can reach the server."""
        return self.host in {"127.0.0.1", "localhost", "::1"}
