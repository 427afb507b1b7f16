"""Disputes in the admin: the list, a page showing everything on record about one
dispute, and the form that decides it through ``dispute_decide``.

The decision form is shown only to staff holding ``exchange.decide_dispute``, and its
view checks that permission again (403 otherwise), so a view-only staff user reads
disputes and decides nothing whatever it posts. The service keeps the two-person rule
for overturns: the first overturn is a pending proposal shown on the page, a different
staff user confirms it. Each step is audited by the service as ``admin:<username>``.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import Exists, OuterRef, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import URLPattern, path, reverse
from django.utils import timezone

from forum.actors import actor_for_user
from forum.admin_helpers import ReadOnlyAdmin
from forum.errors import DomainError

from ..models import Dispute, DisputeDecision, Statement
from .services import DECIDE_PERMISSION, MAX_RATIONALE, dispute_decide


def _labels(value: str) -> list[str]:
    return sorted({s.strip() for s in value.split(",") if s.strip()})


class DecideForm(forms.Form):
    """Input shape only; the rules (labels known, relabel names some, two-person rule)
    are the service's, shown as the form's error."""

    decision = forms.ChoiceField(choices=DisputeDecision.Decision.choices)
    rationale = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4, "cols": 70}),
        max_length=MAX_RATIONALE,
        help_text="Required; it is part of the signed decision every member of the "
        "signal's audience reads.",
    )
    labels = forms.CharField(
        required=False, help_text="Relabel only: the label slugs, comma-separated."
    )

    def clean_rationale(self) -> str:
        text: str = self.cleaned_data["rationale"]
        if not text.strip():
            raise forms.ValidationError("A rationale is required.")
        return text


def may_decide(request: HttpRequest) -> bool:
    user: Any = request.user
    return bool(user.is_active and user.is_staff and user.has_perm(DECIDE_PERMISSION))


class DisputeAdmin(ReadOnlyAdmin):
    list_display = ["id", "status", "grounds", "signal", "opened_by", "age", "pending"]
    list_filter = ["status", "grounds"]
    search_fields = ["=signal__value", "=opener__slug"]
    list_select_related = ["signal", "opener"]
    readonly_fields = [
        "signal",
        "opened_by",
        "grounds",
        "reason",
        "proposed_labels",
        "status",
        "opened_at",
        "decided_at",
    ]
    fields = tuple(readonly_fields)
    change_form_template = "admin/exchange/dispute/change_form.html"

    @admin.display(description="opened by")
    def opened_by(self, obj: Dispute) -> str:
        return obj.opener.slug if obj.opener else "threshold (forum)"

    @admin.display(description="age")
    def age(self, obj: Dispute) -> str:
        end = obj.decided_at or timezone.now()
        days = (end - obj.opened_at).days
        hours = int((end - obj.opened_at).total_seconds() // 3600) % 24
        return f"{days} d {hours} h"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Dispute]:
        proposals = DisputeDecision.objects.filter(dispute=OuterRef("pk"), jws="", superseded=False)
        return super().get_queryset(request).annotate(has_proposal=Exists(proposals))

    @admin.display(boolean=True, description="overturn proposed")
    def pending(self, obj: Dispute) -> bool:
        return bool(getattr(obj, "has_proposal", False))

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "<path:object_id>/decide/",
                self.admin_site.admin_view(self.decide_view),
                name="exchange_dispute_decide",
            ),
            *super().get_urls(),
        ]

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        dispute = Dispute.objects.filter(pk=object_id).select_related("signal").first()
        context = dict(extra_context or {})
        if dispute is not None:
            context.update(self._record(request, dispute))
        return super().change_view(request, object_id, form_url, context)

    def _record(self, request: HttpRequest, dispute: Dispute) -> dict[str, Any]:
        decisions = list(dispute.decisions.all())
        pending = next((d for d in decisions if not d.jws and not d.superseded), None)
        actor = actor_for_user(request.user)
        can = may_decide(request) and dispute.status == Dispute.Status.OPEN
        return {
            "statements": Statement.objects.filter(signal_id=dispute.signal_id)
            .select_related("signal")
            .order_by("received_at", "id"),
            "parties": [p.member.slug for p in dispute.parties.select_related("member")],
            "responses": list(dispute.responses.select_related("member")),
            "decisions": decisions,
            "pending": pending,
            "pending_mine": bool(pending and actor in pending.approvals),
            "may_decide": can,
            "decide_form": DecideForm() if can else None,
        }

    def decide_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """POST only: decide (or propose / confirm an overturn) through the service."""
        if not may_decide(request):
            return HttpResponse(status=403)
        if request.method != "POST":
            return HttpResponse(status=405)
        dispute = get_object_or_404(Dispute, pk=object_id)
        change_url = reverse("admin:exchange_dispute_change", args=[dispute.pk])
        form = DecideForm(request.POST)
        if not form.is_valid():
            for field, errors in form.errors.items():
                text = " ".join(str(e) for e in errors)
                self.message_user(request, f"{field}: {text}", messages.ERROR)
            return HttpResponseRedirect(change_url)
        data = form.cleaned_data
        try:
            decided = dispute_decide(
                dispute=dispute,
                decision=data["decision"],
                rationale=data["rationale"],
                labels=_labels(data["labels"]),
                staff_user=request.user,  # type: ignore[arg-type]
            )
        except DomainError as exc:
            self.message_user(request, f"Not decided: {exc.detail}", messages.ERROR)
            return HttpResponseRedirect(change_url)
        if decided.jws:
            self.message_user(
                request, f"Dispute {dispute.pk}: {decided.decision}, signed.", messages.SUCCESS
            )
        else:
            self.message_user(
                request,
                f"Overturn of dispute {dispute.pk} proposed; another staff user holding the "
                "decide permission must confirm it.",
                messages.WARNING,
            )
        return HttpResponseRedirect(change_url)
