"""Page-side project resolution: the one decorator every project page goes through.

URLs of project pages start with /p/<project_slug>/. The decorator resolves the slug
against the user's memberships (a project you don't belong to is a 404, so its
existence does not leak), checks the role, and hands the view a ProjectAccess.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse

from projects.auth import ProjectAccess
from projects.models import Membership, Role


def project_page(required_role: str = Role.VIEWER) -> Callable:
    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @login_required
        @wraps(view)
        def wrapper(request: HttpRequest, project_slug: str, *args, **kwargs) -> HttpResponse:
            membership = (
                Membership.objects.select_related("project")
                .filter(user=request.user, project__slug=project_slug)
                .first()
            )
            if membership is None:
                raise Http404("No such project among yours.")
            access = ProjectAccess(project=membership.project, role=membership.role, user=request.user)
            if not access.can(required_role):
                raise PermissionDenied(f"This page needs the {required_role} role in {membership.project.name}.")
            request.access = access  # read by the navigation context processor
            return view(request, access, *args, **kwargs)

        return wrapper

    return decorator
