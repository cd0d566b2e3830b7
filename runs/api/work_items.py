"""GET /api/v1/work-items/: work items across the runs a request may see; with
`?awaiting=me`, the items awaiting input on which the caller may decide (the
approver's inbox: four eyes and the items' approvers, as on the admin
dashboard)."""

import django_filters
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers
from rest_framework.reverse import reverse

from ..mail.notifications import approval_url
from ..models import WorkItem
from ..selectors import work_items_awaiting_decision
from ..states import WorkItemState
from . import serializers as s
from .pagination import IdCursorPagination
from .permissions import work_items_visible_to
from .views import ApiMixin, error_responses


class WorkItemFilter(django_filters.FilterSet):
    awaiting = django_filters.ChoiceFilter(
        choices=[("me", "me")],
        method="filter_awaiting",
        help_text="`me`: items awaiting input on which you may decide.",
    )
    state = django_filters.MultipleChoiceFilter(
        choices=WorkItemState.choices, help_text="Work item state; repeat for several."
    )

    class Meta:
        model = WorkItem
        fields = ["awaiting", "state"]

    def filter_awaiting(self, queryset, name, value):
        return work_items_awaiting_decision(self.request.user, queryset)


class InboxWorkItemSerializer(s.WorkItemSerializer):
    run = serializers.UUIDField(source="run_id", read_only=True)
    run_url = serializers.SerializerMethodField()
    approvers = serializers.JSONField(read_only=True)
    approval_deadline = serializers.DateTimeField(read_only=True, allow_null=True)
    approval_url = serializers.SerializerMethodField()

    class Meta(s.WorkItemSerializer.Meta):
        fields = [
            *s.WorkItemSerializer.Meta.fields,
            "run",
            "run_url",
            "approvers",
            "approval_deadline",
            "approval_url",
        ]
        read_only_fields = fields

    def get_run_url(self, item) -> str:
        return reverse(
            "runs-api:run-detail",
            args=[item.run_id],
            request=self.context.get("request"),
        )

    def get_approval_url(self, item) -> str:
        """The admin page to decide on it (awaiting items only)."""
        if item.state != WorkItemState.AWAITING_INPUT:
            return ""
        return approval_url(item.run, item.pk)


@extend_schema(
    tags=["runs"],
    parameters=[
        OpenApiParameter(
            "awaiting",
            OpenApiTypes.STR,
            enum=["me"],
            description="`me`: the items awaiting your decision.",
        )
    ],
    responses={
        200: InboxWorkItemSerializer(many=True),
        **error_responses(400, 401, 403),
    },
)
class WorkItemListView(ApiMixin, generics.ListAPIView):
    """Work items of the runs you may see, oldest first; `?awaiting=me` for the
    ones awaiting your decision."""

    serializer_class = InboxWorkItemSerializer
    pagination_class = IdCursorPagination
    filter_backends = [DjangoFilterBackend]
    filterset_class = WorkItemFilter

    def get_queryset(self):
        # the grants: items of runs this request may not see are never listed
        return work_items_visible_to(self.request).select_related("step", "run")
