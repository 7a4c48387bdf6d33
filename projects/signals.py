"""What projects announces to the apps above it (they connect in AppConfig.ready()).

`project_created(project=...)` is sent inside project_create's transaction, so what a
receiver adds is created, or rolled back, with the project.
"""

from __future__ import annotations

from django.dispatch import Signal

project_created = Signal()
