"""Invitations: administrators invite (by e-mail and role); the invitee accepts with the secret."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import login
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from pollen.accounts import invitations, services
from pollen.accounts.apis import MeOut, SiteOut, me_payload
from pollen.accounts.caller import caller_from_request
from pollen.accounts.models import Invitation, InvitationStatus, Role
from pollen.core.errors import ApiError, Forbidden, NotFound
from pollen.core.serializers import StrictSerializer

HOW_IT_WORKS = (
    "People join a site only by accepting an invitation. A site administrator invites an "
    "e-mail address with a role; the answer holds a secret link, shown once, to pass on through "
    "the hospital's own channel. The link is single-use and expires (7 days unless set). The "
    "invitee opens it and either signs in (joining with their existing account) or chooses a "
    "new username and password. Nothing changes before that, and no endpoint looks accounts "
    "up by name, so a site never learns which usernames exist elsewhere. Each step is audited "
    "(invitation.create, invitation.accept, invitation.revoke)."
)


class InvitationOut(serializers.ModelSerializer):
    site = serializers.CharField(source="site.slug")
    status = serializers.ChoiceField(choices=InvitationStatus.choices, read_only=True)
    created_by = serializers.CharField(source="created_by.username", allow_null=True, default=None)
    accepted_by = serializers.CharField(
        source="accepted_by.username",
        allow_null=True,
        default=None,
        help_text="The account that joined (a member of this site from then on).",
    )

    class Meta:
        model = Invitation
        fields = [
            "id",
            "email",
            "role",
            "site",
            "status",
            "created_by",
            "created_at",
            "expires_at",
            "accepted_at",
            "accepted_by",
            "revoked_at",
        ]


class InvitationCreatedOut(InvitationOut):
    token = serializers.CharField(help_text="The secret, shown once. Only its digest is stored.")
    accept_url = serializers.CharField(
        help_text="The dashboard page that accepts it (the secret is in the #fragment, which "
        "browsers never send to a server). Pass it on to the invitee; it is shown once."
    )

    class Meta(InvitationOut.Meta):
        fields = [*InvitationOut.Meta.fields, "token", "accept_url"]


class InvitationIn(StrictSerializer):
    email = serializers.EmailField(help_text="Whom you invite (kept with the invitation).")
    role = serializers.ChoiceField(choices=Role.choices, default=Role.CLINICIAN)
    expires_in_days = serializers.IntegerField(
        min_value=1, max_value=30, default=invitations.DEFAULT_DAYS
    )


def _site_invitations(caller: Any, slug: str) -> Any:
    site_id = caller.member_site(slug)
    caller.require_admin(site_id)
    return Invitation.objects.filter(site_id=site_id).select_related(
        "site", "created_by", "accepted_by"
    )


class InvitationListApi(generics.ListAPIView):
    serializer_class = InvitationOut

    def get_queryset(self):  # type: ignore[no-untyped-def]
        if getattr(self, "swagger_fake_view", False):  # schema generation: no request to scope by
            return Invitation.objects.none()
        return _site_invitations(caller_from_request(self.request), self.kwargs["slug"])

    @extend_schema(tags=["sites"], summary="Invitations to this site (site administrators)")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        tags=["sites"],
        summary="Invite someone to this site (site administrators)",
        description=HOW_IT_WORKS,
        request=InvitationIn,
        responses={201: InvitationCreatedOut},
    )
    def post(self, request: Request, slug: str) -> Response:
        caller = caller_from_request(request)
        site = services.site_for_member(caller=caller, slug=slug)
        data = InvitationIn(data=request.data)
        data.is_valid(raise_exception=True)
        invitation, plaintext = invitations.invitation_create(
            caller=caller, site=site, **data.validated_data
        )
        invitation.token = plaintext  # type: ignore[attr-defined]
        invitation.accept_url = f"{settings.PUBLIC_URL}/invitation#{plaintext}"  # type: ignore[attr-defined]
        return Response(InvitationCreatedOut(invitation).data, status=status.HTTP_201_CREATED)


class InvitationRevokeApi(APIView):
    @extend_schema(
        tags=["sites"],
        summary="Withdraw an invitation that has not been accepted",
        request=None,
        responses=InvitationOut,
    )
    def post(self, request: Request, slug: str, pk: int) -> Response:
        caller = caller_from_request(request)
        invitation = _site_invitations(caller, slug).filter(pk=pk).first()
        if invitation is None:
            raise NotFound("There is no such invitation at this site.", code="not_found")
        invitation = invitations.invitation_revoke(caller=caller, invitation=invitation)
        return Response(InvitationOut(invitation).data)


class InvitationTokenIn(StrictSerializer):
    token = serializers.CharField(max_length=200, help_text="The secret from the invitation link")


class InvitationPreviewOut(serializers.Serializer):
    site = SiteOut()
    role = serializers.ChoiceField(choices=Role.choices)
    expires_at = serializers.DateTimeField()


class InvitationPreviewApi(APIView):
    permission_classes = [AllowAny]
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "invitations"

    @extend_schema(
        tags=["auth"],
        summary="What an invitation offers (which site, which role), before accepting it",
        request=InvitationTokenIn,
        responses={200: InvitationPreviewOut, 404: OpenApiResponse(description="Not valid")},
    )
    def post(self, request: Request) -> Response:
        data = InvitationTokenIn(data=request.data)
        data.is_valid(raise_exception=True)
        invitation = invitations.invitation_find(token=data.validated_data["token"])
        return Response(InvitationPreviewOut(invitation).data)


class AcceptIn(InvitationTokenIn):
    username = serializers.CharField(
        max_length=150, required=False, help_text="New accounts only: the username to create"
    )
    password = serializers.CharField(
        max_length=200,
        required=False,
        write_only=True,
        style={"input_type": "password"},
        help_text="New accounts only: the password to set",
    )


class InvitationAcceptApi(APIView):
    permission_classes = [AllowAny]
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "invitations"

    @extend_schema(
        tags=["auth"],
        summary="Accept an invitation: join with my signed-in account, or create a new one",
        description=(
            "Signed in: send the token only; your account joins the site. Not signed in: send "
            "the token with a new username and password; the account is created, joins the "
            "site and is signed in. A username or password sent while signed in is refused "
            "(400 signed_in), never ignored. An unknown, used, revoked or expired token all get "
            "the same 404 invitation_invalid. Site API tokens cannot accept (403)."
        ),
        request=AcceptIn,
        responses=MeOut,
    )
    def post(self, request: Request) -> Response:
        caller = caller_from_request(request)
        if caller.token is not None:
            raise Forbidden(
                "Invitations are for people: open the link in a browser and sign in.",
                code="person_required",
            )
        data = AcceptIn(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        invitations.invitation_find(token=fields["token"])  # a dead link says so before anything
        user = request.user if request.user.is_authenticated else None
        credentials = {k: fields[k] for k in ("username", "password") if k in fields}
        if user is not None and credentials:
            raise ApiError(
                f"You are signed in as {caller.username}: accepting joins this account. Send "
                "the token only, or sign out to create a new account.",
                code="signed_in",
                fields={k: ["Not used when signed in."] for k in credentials},
            )
        if user is None and set(credentials) != {"username", "password"}:
            raise ApiError(
                "Choose a username and a password for your new account, or sign in first to "
                "join with the account you have.",
                code="invalid",
                fields={"username": ["Required."], "password": ["Required."]},
            )
        membership = invitations.invitation_accept(token=fields["token"], user=user, **credentials)
        if user is None:
            login(request, membership.user, backend="django.contrib.auth.backends.ModelBackend")
        request._pollen_caller = None  # type: ignore[attr-defined]
        return Response(MeOut(me_payload(request)).data)
