"""Every change to members, keys and groups goes through one function here.

Each runs in a transaction, writes its audit entry, and tells the change feed what the
change means for visibility (``exchange.services.membership``), so that no admin
action, command or API call can change who sees what without the feed knowing.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from datetime import datetime
from typing import Any, TypeVar

from django.db import IntegrityError, models, transaction
from django.utils import timezone

from exchange.client import jws
from exchange.client.statement_format import (
    KEY_PROOF_CLAIMS,
    KEY_PROOF_MAX_AGE,
    MAX_JTI_LENGTH,
    OP_ADD_KEY,
)
from exchange.services import membership
from forum.errors import ConflictError, DomainError

from .audit import audit_record
from .forum_key import forum_public_keys
from .models import ApiKey, GroupMembership, Member, SharingGroup, SigningKey

_M = TypeVar("_M", bound=models.Model)

ALL_SCOPES = [scope.value for scope in ApiKey.Scope]
API_KEY_PREFIX = "cdl_"

# Which lifecycle moves an admin may make. Expulsion is final: a member that comes back
# applies again as a new member, so that its old (withdrawn) statements stay withdrawn.
_TRANSITIONS: dict[str, set[str]] = {
    Member.Status.APPLICANT: {Member.Status.ACTIVE, Member.Status.EXPELLED},
    Member.Status.ACTIVE: {Member.Status.SUSPENDED, Member.Status.EXPELLED},
    Member.Status.SUSPENDED: {Member.Status.ACTIVE, Member.Status.EXPELLED},
    Member.Status.EXPELLED: set(),
}


def _create_unique(model: type[_M], conflict: ConflictError, **fields: Any) -> _M:
    """Create a row whose slug or kid must be new, or raise ``conflict``.

    The database's unique constraint decides, so two concurrent creates of the same
    slug give one row and one conflict, never an IntegrityError (a 500).
    """
    try:
        with transaction.atomic():
            return model.objects.create(**fields)  # type: ignore[attr-defined]
    except IntegrityError:
        raise conflict from None


def _member_state(member: Member) -> dict[str, str]:
    return {"slug": member.slug, "name": member.name, "status": member.status}


def member_create(
    *,
    slug: str,
    name: str,
    contact_email: str = "",
    status: str = Member.Status.APPLICANT,
    actor: str,
) -> Member:
    with transaction.atomic():
        member = _create_unique(
            Member,
            ConflictError(f"A member with slug {slug!r} exists already.", code="member_exists"),
            slug=slug,
            name=name,
            contact_email=contact_email,
        )
        audit_record(
            actor=actor,
            action="member.created",
            object_type="member",
            object_id=slug,
            after=_member_state(member),
        )
        if status != Member.Status.APPLICANT:
            member_set_status(member=member, status=status, actor=actor)
    return member


def member_set_status(*, member: Member, status: str, actor: str) -> Member:
    """Move a member through its lifecycle; suspension and expulsion act at once.

    An expelled member's statements are withdrawn after the status change commits, a
    chunk per transaction (``membership.member_statements_withdraw``); expelling it
    again finishes a withdrawal that a crash interrupted.
    """

    if status not in Member.Status.values:
        raise DomainError(f"Unknown member status {status!r}.", code="invalid_status")
    member = _member_status_change(member=member, status=status, actor=actor)
    if status == Member.Status.EXPELLED:
        membership.member_statements_withdraw(member_id=member.pk)
    return member


def _member_status_change(*, member: Member, status: str, actor: str) -> Member:
    with transaction.atomic():
        member = Member.objects.select_for_update().get(pk=member.pk)
        if member.status == status:
            return member
        if status not in _TRANSITIONS[member.status]:
            raise ConflictError(
                f"A member cannot go from {member.status} to {status}.",
                code="invalid_transition",
            )
        before = _member_state(member)
        previous = member.status
        member.status = status
        member.status_changed_at = timezone.now()
        member.save(update_fields=["status", "status_changed_at"])
        if previous == Member.Status.APPLICANT and status == Member.Status.ACTIVE:
            membership.member_joined_forum(member=member)
        if status == Member.Status.EXPELLED:
            membership.member_expelled(member=member)
        audit_record(
            actor=actor,
            action="member.status_changed",
            object_type="member",
            object_id=member.slug,
            before=before,
            after=_member_state(member),
        )
    return member


def member_update(*, member: Member, name: str, contact_email: str, actor: str) -> Member:
    """Change a member's descriptive details; its status moves only by ``member_set_status``."""
    with transaction.atomic():
        member = Member.objects.select_for_update().get(pk=member.pk)
        before = {"name": member.name, "contact_email": member.contact_email}
        after = {"name": name, "contact_email": contact_email}
        if before == after:
            return member
        member.name, member.contact_email = name, contact_email
        member.save(update_fields=["name", "contact_email"])
        audit_record(
            actor=actor,
            action="member.updated",
            object_type="member",
            object_id=member.slug,
            before=before,
            after=after,
        )
    return member


def _digest(secret: str) -> str:
    # API keys carry 256 bits of randomness, so a fast hash is enough: no dictionary to
    # attack, unlike passwords.
    return hashlib.sha256(secret.encode()).hexdigest()


def api_key_issue(
    *,
    member: Member,
    scopes: Iterable[str] | None = None,
    name: str = "",
    expires_at: datetime | None = None,
    actor: str,
) -> tuple[ApiKey, str]:
    """Create an API key; the secret is returned once and never stored."""
    scope_list = sorted(set(scopes)) if scopes is not None else list(ALL_SCOPES)
    unknown = [s for s in scope_list if s not in ALL_SCOPES]
    if unknown or not scope_list:
        raise DomainError(
            f"Scopes must be a non-empty subset of {', '.join(ALL_SCOPES)}; got {scope_list}.",
            code="invalid_scopes",
        )
    prefix = secrets.token_hex(6)
    secret = f"{API_KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    with transaction.atomic():
        key = ApiKey.objects.create(
            member=member,
            name=name,
            prefix=prefix,
            digest=_digest(secret),
            scopes=scope_list,
            expires_at=expires_at,
        )
        audit_record(
            actor=actor,
            action="api_key.issued",
            object_type="api_key",
            object_id=prefix,
            after={"member": member.slug, "scopes": scope_list, "expires_at": expires_at},
        )
    return key, secret


def api_key_lookup(secret: str) -> ApiKey | None:
    """The key a bearer secret belongs to, compared in constant time; None if unknown."""
    if not secret.startswith(API_KEY_PREFIX):
        return None
    prefix, _, _ = secret[len(API_KEY_PREFIX) :].partition("_")
    key = ApiKey.objects.select_related("member").filter(prefix=prefix).first()
    if key is None or not hmac.compare_digest(key.digest, _digest(secret)):
        return None
    return key


def api_key_revoke(*, api_key: ApiKey, actor: str) -> ApiKey:
    with transaction.atomic():
        if api_key.revoked_at is None:
            api_key.revoked_at = timezone.now()
            api_key.save(update_fields=["revoked_at"])
            audit_record(
                actor=actor,
                action="api_key.revoked",
                object_type="api_key",
                object_id=api_key.prefix,
                after={"member": api_key.member.slug},
            )
    return api_key


def signing_key_check_registrable(*, public_key: str) -> tuple[str, str]:
    """``(x, kid)`` of an Ed25519 public key given as PEM text or base64url ``x``;
    raises the reason it cannot be registered (unreadable, taken)."""
    try:
        x = jws.load_public_key(public_key)
    except jws.InvalidKey as exc:
        raise DomainError(str(exc), code="invalid_key") from exc
    kid = jws.jwk_thumbprint(x)
    if kid in forum_public_keys():
        # Verifiers index the JWKS by kid: a member entry under the forum's kid would
        # shadow the key that signs receipts.
        raise ConflictError(f"Key {kid} is the forum's own key.", code="key_exists")
    if SigningKey.objects.filter(kid=kid).exists():
        raise ConflictError(f"Key {kid} is registered already.", code="key_exists")
    return x, kid


def signing_key_register(
    *, member: Member, public_key: str, actor: str, status: str = SigningKey.Status.ACTIVE
) -> SigningKey:
    """Register an Ed25519 public key given as PEM text, a public JWK or base64url ``x``.

    Staff and commands register keys active; a member's own unproven request is pending.
    """
    x, kid = signing_key_check_registrable(public_key=public_key)
    return _signing_key_create(member=member, x=x, kid=kid, status=status, actor=actor)


def _signing_key_create(
    *, member: Member, x: str, kid: str, status: str, actor: str, proved_by: str | None = None
) -> SigningKey:
    with transaction.atomic():
        key = _create_unique(
            SigningKey,
            ConflictError(f"Key {kid} is registered already.", code="key_exists"),
            member=member,
            kid=kid,
            x=x,
            status=status,
            approved_at=timezone.now() if status == SigningKey.Status.ACTIVE else None,
        )
        after: dict[str, Any] = {"member": member.slug, "x": x, "status": status}
        if proved_by is not None:
            after["proved_by"] = proved_by
        audit_record(
            actor=actor,
            action="signing_key.registered",
            object_type="signing_key",
            object_id=kid,
            after=after,
        )
    return key


# A stolen API key with scope ``manage`` can ask for keys, not get them: each waits for an
# admin. The cap keeps such a thief from burying the admin's queue.
MAX_PENDING_KEYS = 5


def signing_key_request(*, member: Member, jwk: Any, proof: Any = None, actor: str) -> SigningKey:
    """A member registers a key itself (``POST /api/v1/signing-keys``).

    Without ``proof`` the key is pending until an admin approves it, having compared its
    thumbprint with the member out of band. With a proof (a compact JWS over
    ``{"iss", "iat", "jti", "op": "add_key", "kid": <new kid>}`` signed by one of the
    member's active keys) it is active at once: a rotation needs no admin.
    """
    try:
        x = jws.x_from_jwk(jwk)
    except jws.InvalidKey as exc:
        raise DomainError(str(exc), code="invalid_key") from exc
    x, kid = signing_key_check_registrable(public_key=x)
    if proof is None:
        with transaction.atomic():
            Member.objects.select_for_update().filter(pk=member.pk).first()
            pending = SigningKey.objects.filter(member=member, status=SigningKey.Status.PENDING)
            if pending.count() >= MAX_PENDING_KEYS:
                raise ConflictError(
                    f"{member.slug} has {MAX_PENDING_KEYS} keys waiting for approval already; "
                    "retire one, or ask the forum's admins to approve them.",
                    code="too_many_pending_keys",
                )
            return _signing_key_create(
                member=member, x=x, kid=kid, status=SigningKey.Status.PENDING, actor=actor
            )
    with transaction.atomic():
        # The member's lock, as revocation takes it: a proof by a key being revoked is
        # judged before or after the revocation, never half-way.
        Member.objects.select_for_update().filter(pk=member.pk).first()
        proved_by = _check_key_proof(member=member, proof=proof, kid=kid)
        return _signing_key_create(
            member=member,
            x=x,
            kid=kid,
            status=SigningKey.Status.ACTIVE,
            actor=actor,
            proved_by=proved_by,
        )


def _invalid_proof(detail: str) -> DomainError:
    return DomainError(detail, code="invalid_proof")


def _check_key_proof(*, member: Member, proof: Any, kid: str) -> str:
    """The kid of the active key that signed ``proof`` for adding ``kid``; else raise."""
    if not isinstance(proof, str):
        raise _invalid_proof("proof must be a compact JWS string.")
    try:
        parsed = jws.parse_compact(proof)
    except jws.MalformedJWS as exc:
        raise _invalid_proof(f"proof: {exc.detail}") from None
    signer = SigningKey.objects.filter(member=member, kid=parsed.kid).first()
    if signer is None or signer.status != SigningKey.Status.ACTIVE:
        raise _invalid_proof(
            f"proof: key {parsed.kid} is not an active key of {member.slug}; a proof must be "
            "signed by one of your active keys (without one, register without a proof and "
            "have the forum's admins approve the key)."
        )
    if not jws.verify(parsed, jws.public_key_from_x(signer.x)):
        raise _invalid_proof("proof: the signature does not verify with its key.")
    claims = parsed.claims
    if set(claims) != KEY_PROOF_CLAIMS:
        raise _invalid_proof(f"proof: claims must be exactly {sorted(KEY_PROOF_CLAIMS)}.")
    wanted = {"iss": member.slug, "op": OP_ADD_KEY, "kid": kid}
    for name, value in wanted.items():
        if claims[name] != value:
            raise _invalid_proof(f"proof: {name} must be {value!r}; got {claims[name]!r}.")
    iat, jti = claims["iat"], claims["jti"]
    if not isinstance(iat, int) or isinstance(iat, bool):
        raise _invalid_proof("proof: iat must be Unix seconds.")
    if abs(timezone.now().timestamp() - iat) > KEY_PROOF_MAX_AGE:
        raise _invalid_proof(
            f"proof: iat must be within {KEY_PROOF_MAX_AGE} s of the forum's clock; sign a "
            "fresh proof."
        )
    if not isinstance(jti, str) or not 1 <= len(jti) <= MAX_JTI_LENGTH:
        raise _invalid_proof(f"proof: jti must be a string of 1 to {MAX_JTI_LENGTH} characters.")
    return signer.kid


def signing_key_approve(*, key: SigningKey, actor: str) -> SigningKey:
    """An admin approves a pending key (after comparing its thumbprint out of band)."""
    with transaction.atomic():
        Member.objects.select_for_update().filter(pk=key.member_id).first()
        key = SigningKey.objects.select_for_update().select_related("member").get(pk=key.pk)
        if key.status != SigningKey.Status.PENDING:
            raise ConflictError(
                f"Key {key.kid} is {key.status}, not pending.", code="invalid_transition"
            )
        key.status = SigningKey.Status.ACTIVE
        key.approved_at = timezone.now()
        key.save(update_fields=["status", "approved_at"])
        audit_record(
            actor=actor,
            action="signing_key.approved",
            object_type="signing_key",
            object_id=key.kid,
            before={"status": SigningKey.Status.PENDING},
            after={"member": key.member.slug, "status": key.status},
        )
    return key


def signing_key_retire(*, key: SigningKey, actor: str) -> SigningKey:
    """A retired key signs nothing new; what it signed before stays valid. Retiring a
    pending key withdraws the request."""
    with transaction.atomic():
        key = SigningKey.objects.select_for_update().get(pk=key.pk)
        before = {"status": key.status}
        if key.status not in (SigningKey.Status.ACTIVE, SigningKey.Status.PENDING):
            raise ConflictError(f"Key {key.kid} is {key.status}.", code="invalid_transition")
        key.status = SigningKey.Status.RETIRED
        key.retired_at = timezone.now()
        key.save(update_fields=["status", "retired_at"])
        audit_record(
            actor=actor,
            action="signing_key.retired",
            object_type="signing_key",
            object_id=key.kid,
            before=before,
            after={"member": key.member.slug, "status": key.status},
        )
    return key


def signing_key_revoke(
    *, key: SigningKey, compromised_since: datetime | None = None, actor: str
) -> SigningKey:
    """Revoke a key; its statements *received* at or after ``compromised_since`` are
    withdrawn, whatever ``iat`` they claim (a thief chooses ``iat``).

    Without ``compromised_since`` the key is revoked from now on: nothing it signed
    before is withdrawn, and it signs nothing new.
    """

    now = timezone.now()
    # Whole seconds: receipts carry integer receipt times, and "received at or after T"
    # must give offline verifiers the same answer as the server.
    since = None if compromised_since is None else compromised_since.replace(microsecond=0)
    with transaction.atomic():
        # The member's lock, which its statement batches hold from their key check to
        # their commit: a batch that saw the key active is committed before we withdraw,
        # so what it stored is withdrawn too; later batches see the key revoked.
        Member.objects.select_for_update().filter(pk=key.member_id).first()
        key = SigningKey.objects.select_for_update().select_related("member").get(pk=key.pk)
        before = {"status": key.status, "compromised_since": key.compromised_since}
        if key.compromised_since is not None and since is not None:
            since = min(since, key.compromised_since)
        elif key.compromised_since is not None:
            since = key.compromised_since
        key.status = SigningKey.Status.REVOKED
        # revoked_at is when the key stopped counting: nothing received from then on
        # stands, so for a compromise it is the compromise time (what the JWKS says).
        key.revoked_at = min(key.revoked_at or now, since or now)
        key.compromised_since = since
        key.save(update_fields=["status", "revoked_at", "compromised_since"])
        withdrawn = 0
        if since is not None:
            withdrawn = membership.key_compromised(key=key, since=since)
        audit_record(
            actor=actor,
            action="signing_key.revoked",
            object_type="signing_key",
            object_id=key.kid,
            before=before,
            after={
                "member": key.member.slug,
                "status": key.status,
                "compromised_since": since,
                "statements_withdrawn": withdrawn,
            },
        )
    return key


def sharing_group_create(
    *,
    slug: str,
    name: str = "",
    members: Iterable[Member] = (),
    description: str = "",
    actor: str,
) -> SharingGroup:
    with transaction.atomic():
        group = _create_unique(
            SharingGroup,
            ConflictError(f"A sharing group {slug!r} exists already.", code="group_exists"),
            slug=slug,
            name=name or slug,
            description=description,
        )
        audit_record(
            actor=actor,
            action="sharing_group.created",
            object_type="sharing_group",
            object_id=slug,
            after={"name": group.name},
        )
        sharing_group_set_members(group=group, members=members, actor=actor)
    return group


def sharing_group_update(
    *, group: SharingGroup, name: str, description: str, actor: str
) -> SharingGroup:
    """Change a group's name or description; membership changes go through
    ``sharing_group_set_members`` because they change visibility."""
    with transaction.atomic():
        group = SharingGroup.objects.select_for_update().get(pk=group.pk)
        before = {"name": group.name, "description": group.description}
        after = {"name": name or group.slug, "description": description}
        if before == after:
            return group
        group.name, group.description = after["name"], description
        group.save(update_fields=["name", "description"])
        audit_record(
            actor=actor,
            action="sharing_group.updated",
            object_type="sharing_group",
            object_id=group.slug,
            before=before,
            after=after,
        )
    return group


def sharing_group_set_members(
    *, group: SharingGroup, members: Iterable[Member], actor: str
) -> SharingGroup:
    """Replace a group's member list; joiners receive its signals, leavers tombstones."""

    wanted = {m.pk: m for m in members}
    with transaction.atomic():
        group = SharingGroup.objects.select_for_update().get(pk=group.pk)
        current = {gm.member_id: gm for gm in GroupMembership.objects.filter(group=group)}
        before = sorted(Member.objects.filter(pk__in=current).values_list("slug", flat=True))
        for member_id, gm in current.items():
            if member_id not in wanted:
                gm.delete()
                membership.member_left_group(group=group, member_id=member_id)
        for member_id, member in wanted.items():
            if member_id not in current:
                GroupMembership.objects.create(group=group, member=member)
                membership.member_joined_group(group=group, member_id=member_id)
        after = sorted(m.slug for m in wanted.values())
        if before != after:
            audit_record(
                actor=actor,
                action="sharing_group.members_set",
                object_type="sharing_group",
                object_id=group.slug,
                before={"members": before},
                after={"members": after},
            )
    return group
