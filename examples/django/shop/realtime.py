"""The project's publisher: one per process, shared by every view, task and thread.

Building it does no I/O; the first publish connects.
"""

from django.conf import settings

from faye.redis import SyncPublisher

publisher = SyncPublisher(settings.FAYE_ENGINE, timeout=settings.FAYE_TIMEOUT)
