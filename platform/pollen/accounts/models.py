"""Sites (hospitals), who belongs to them, and site-scoped API tokens."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

slug_validator = RegexValidator(
    r"^[a-z0-9](?:[a-z0-9-]{0,48}[a-z0-9])?$",
    "Use lowercase letters, digits and hyphens (for example 'st-marys').",
)


class Site(models.Model):
    slug = models.CharField(max_length=50, unique=True, validators=[slug_validator])
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)
    agent_last_seen_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug


class Role(models.TextChoices):
    ADMIN = "admin", "Site administrator"
    CLINICIAN = "clinician", "Clinician"


class Membership(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.CLINICIAN)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "site"], name="one_membership_per_site")
        ]
        ordering = ["site__slug", "user__username"]

    def __str__(self) -> str:
        return f"{self.user_id}@{self.site_id}:{self.role}"


class TokenKind(models.TextChoices):
    SYSTEM = "system", "Hospital system"
    AGENT = "agent", "Site agent"
    JOB = "job", "One job"


class ApiToken(models.Model):
    """A bearer token bound to one site. Only a SHA-256 digest of the secret is stored."""

    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="tokens")
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=10, choices=TokenKind.choices)
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.CLINICIAN)
    prefix = models.CharField(max_length=16, unique=True)
    digest = models.CharField(max_length=64)
    job_id = models.BigIntegerField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["site", "kind"])]

    def __str__(self) -> str:
        return f"{self.site.slug}:{self.name}"


class InvitationStatus(models.TextChoices):
    PENDING = "pending", "Waiting to be accepted"
    ACCEPTED = "accepted", "Accepted"
    REVOKED = "revoked", "Withdrawn"
    EXPIRED = "expired", "Expired"


class Invitation(models.Model):
    """An offer to join one site with one role, accepted by the invitee with a secret link.

    Only a SHA-256 digest of the secret is kept. The secret is single-use and expires, so an
    administrator never adds an existing account by name (which would let one site annex
    another site's users or probe which usernames exist): the person accepts, or nothing happens.
    """

    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="invitations")
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.CLINICIAN)
    email = models.EmailField(help_text="Whom the invitation was meant for (a record, not a check)")
    digest = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"invitation {self.pk} to {self.site_id} ({self.role})"

    @property
    def status(self) -> str:
        if self.accepted_at is not None:
            return InvitationStatus.ACCEPTED
        if self.revoked_at is not None:
            return InvitationStatus.REVOKED
        if self.expires_at <= timezone.now():
            return InvitationStatus.EXPIRED
        return InvitationStatus.PENDING
