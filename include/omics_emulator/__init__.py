"""A local HealthOmics (``omics``) service for tests, demos and benchmarks.

It speaks the service's rest-json protocol from botocore's own model, keeps runs and
run batches on an emulated clock, enforces the published API quotas, writes run
outputs to S3 and sends "Run Status Change" events to SQS through the local stack,
and has an admin API (``/_emulator/...``) for fault injection and call counters.
Start it with ``python -m omics_emulator --port 9100``.
"""

from .backend import Backend
from .client import EmulatorAdmin
from .config import EmulatorConfig, RunProfile
from .server import EmulatorServer, serve

__all__ = ["Backend", "EmulatorAdmin", "EmulatorConfig", "EmulatorServer", "RunProfile", "serve"]
