"""transcoder: a gRPC-to-REST transcoding gateway driven by google.api.http."""

__version__ = "0.1.0"
