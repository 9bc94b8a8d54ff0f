"""transcoder: a gRPC-to-REST transcoding gateway driven by google.api.http."""

__version__ = "0.1.0"  # before the imports: modules below read it

from transcoder.app import create_app
from transcoder.config import Settings, load_settings
from transcoder.errors import ConfigError, GatewayError

__all__ = ["ConfigError", "GatewayError", "Settings", "__version__", "create_app", "load_settings"]
