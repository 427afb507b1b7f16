from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import CommandParser

from exchange.disputes.models import DECISIONS
from exchange.disputes.services import dispute_decide
from exchange.models import Dispute
from members.management.commands._base import CommandFailure, JsonCommand


def _labels(value: str) -> list[str]:
    return [s.strip() for s in value.split(",") if s.strip()]


class Command(JsonCommand):
    help = (
        "Decide a dispute: uphold, overturn or relabel, signed by the forum's key. With "
        "--staff the decision is that staff user's (who needs exchange.decide_dispute); "
        "an overturn needs CORDIALE_DISPUTE_OVERTURN_APPROVALS distinct approvers, so "
        'until then it prints "decision": "overturn_proposed" and no jws.'
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("dispute", type=int)
        parser.add_argument("decision", choices=DECISIONS)
        parser.add_argument("--rationale", required=True)
        parser.add_argument("--labels", type=_labels, default=[], help="a,b (relabel only)")
        parser.add_argument("--staff", help="the deciding staff user's username")

    def run(self, **options: Any) -> dict[str, Any]:
        dispute = Dispute.objects.filter(pk=options["dispute"]).first()
        if dispute is None:
            raise CommandFailure(f"No dispute {options['dispute']}.", code="not_found")
        staff = None
        if options["staff"]:
            staff = get_user_model().objects.filter(username=options["staff"]).first()
            if staff is None:
                raise CommandFailure(f"No staff user {options['staff']!r}.", code="unknown_user")
        decided = dispute_decide(
            dispute=dispute,
            decision=options["decision"],
            rationale=options["rationale"],
            labels=options["labels"],
            staff_user=staff,
        )
        if not decided.jws:
            return {
                "dispute": dispute.pk,
                "decision": "overturn_proposed",
                "approvals": len(decided.approvals),
                "jws": None,
            }
        return {"dispute": dispute.pk, "decision": decided.decision, "jws": decided.jws}
