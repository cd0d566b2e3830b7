import socket

import pytest
from django.utils import timezone


@pytest.fixture
def closed_port():
    """A local TCP port nothing listens on (bound, then released)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


@pytest.fixture
def cluster_on_time(db):
    """The housekeeping schedule as a live cluster leaves it: due in the future."""
    from django_q.models import Schedule

    from runs.engine.housekeeping import housekeeping_schedule_sync

    housekeeping_schedule_sync()
    Schedule.objects.filter(name="runs:housekeeping").update(
        next_run=timezone.now() + timezone.timedelta(seconds=30)
    )


@pytest.fixture
def cluster_gone(db):
    """The housekeeping schedule as it stays when no cluster fires it."""
    from django_q.models import Schedule

    from runs.engine.housekeeping import housekeeping_schedule_sync

    housekeeping_schedule_sync()
    Schedule.objects.filter(name="runs:housekeeping").update(
        next_run=timezone.now() - timezone.timedelta(hours=1)
    )
