"""Thin views: parse input, call a service or selector, render output."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import authenticate, login, logout
from django.middleware.csrf import get_token
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import generics, serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from pollen.accounts import selectors, services
from pollen.accounts.caller import caller_from_request
from pollen.accounts.models import ApiToken, Membership, Role, Site, TokenKind
from pollen.core.errors import ApiError, NotFound
from pollen.core.serializers import StrictSerializer


class SiteOut(serializers.ModelSerializer):
    class Meta:
        model = Site
        fields = ["slug", "name", "agent_last_seen_at"]


class MembershipBrief(serializers.Serializer):
    site = SiteOut()
    role = serializers.ChoiceField(choices=Role.choices)


class MeOut(serializers.Serializer):
    username = serializers.CharField()
    display_name = serializers.CharField()
    is_token = serializers.BooleanField()
    is_operator = serializers.BooleanField()
    memberships = MembershipBrief(many=True)


def me_payload(request: Request) -> dict[str, Any]:
    caller = caller_from_request(request)
    sites = {s.pk: s for s in Site.objects.filter(pk__in=caller.site_ids)}
    user = request.user
    display = (
        (getattr(user, "get_full_name", lambda: "")() or caller.username)
        if caller.token is None
        else caller.username
    )
    return {
        "username": caller.username,
        "display_name": display,
        "is_token": caller.token is not None,
        "is_operator": bool(getattr(user, "is_staff", False)),
        "memberships": [
            {"site": sites[site_id], "role": role}
            for site_id, role in sorted(caller.roles.items())
            if site_id in sites
        ],
    }


class LoginIn(StrictSerializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=200, style={"input_type": "password"})


class LoginApi(APIView):
    permission_classes = [AllowAny]
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "login"

    @extend_schema(
        tags=["auth"], summary="Sign in (dashboard session)", request=LoginIn, responses=MeOut
    )
    def post(self, request: Request) -> Response:
        data = LoginIn(data=request.data)
        data.is_valid(raise_exception=True)
        user = authenticate(
            request,
            username=data.validated_data["username"],
            password=data.validated_data["password"],
        )
        if user is None:
            raise ApiError(
                "The username or password is not right. Check both and try again.",
                code="invalid_credentials",
                status_code=status.HTTP_401_UNAUTHORIZED,
            )
        login(request, user)
        request._pollen_caller = None  # type: ignore[attr-defined]
        return Response(MeOut(me_payload(request)).data)


class LogoutApi(APIView):
    @extend_schema(tags=["auth"], summary="Sign out", request=None, responses={204: None})
    def post(self, request: Request) -> Response:
        logout(request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeApi(APIView):
    @extend_schema(tags=["auth"], summary="Who am I, and at which sites", responses=MeOut)
    def get(self, request: Request) -> Response:
        return Response(MeOut(me_payload(request)).data)


class CsrfApi(APIView):
    permission_classes = [AllowAny]

    @extend_schema(
        tags=["auth"],
        summary="Set the CSRF cookie for the dashboard",
        responses=inline_serializer("CsrfOut", {"csrf_token": serializers.CharField()}),
    )
    def get(self, request: Request) -> Response:
        return Response({"csrf_token": get_token(request)})


@extend_schema(
    tags=["sites"], summary="My sites, or the consortium directory with ?scope=consortium"
)
class SiteListApi(generics.ListAPIView):
    serializer_class = SiteOut

    def get_queryset(self):  # type: ignore[no-untyped-def]
        if getattr(self, "swagger_fake_view", False):  # schema generation: no request to scope by
            return self.serializer_class.Meta.model.objects.none()
        scope = self.request.query_params.get("scope", "mine")
        if scope not in {"mine", "consortium"}:
            raise ApiError("scope must be 'mine' or 'consortium'.", code="invalid_filter")
        return selectors.site_list(
            caller=caller_from_request(self.request), consortium=scope == "consortium"
        )


class SiteDetailApi(APIView):
    @extend_schema(tags=["sites"], summary="One of my sites", responses=SiteOut)
    def get(self, request: Request, slug: str) -> Response:
        site = services.site_for_member(caller=caller_from_request(request), slug=slug)
        return Response(SiteOut(site).data)


class MemberOut(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username")
    email = serializers.CharField(source="user.email")
    site = serializers.CharField(source="site.slug")

    class Meta:
        model = Membership
        fields = ["id", "username", "email", "site", "role", "created_at"]


class MemberPatchIn(StrictSerializer):
    role = serializers.ChoiceField(choices=Role.choices)


@extend_schema(
    tags=["sites"],
    summary="This site's members (site administrators)",
    description=(
        "People join a site by accepting an invitation (POST /sites/{slug}/invitations/); "
        "there is no way to add an account by name."
    ),
)
class MemberListApi(generics.ListAPIView):
    serializer_class = MemberOut
    filterset_fields = ["role"]

    def get_queryset(self):  # type: ignore[no-untyped-def]
        if getattr(self, "swagger_fake_view", False):  # schema generation: no request to scope by
            return self.serializer_class.Meta.model.objects.none()
        caller = caller_from_request(self.request)
        return selectors.membership_list(
            caller=caller, site_id=caller.member_site(self.kwargs["slug"])
        )


class MemberDetailApi(APIView):
    def _get(self, request: Request, slug: str, pk: int) -> tuple[Any, Membership]:
        caller = caller_from_request(request)
        try:
            return caller, selectors.membership_get(
                caller=caller, site_id=caller.member_site(slug), membership_id=pk
            )
        except Membership.DoesNotExist as exc:
            raise NotFound("There is no such member at this site.") from exc

    @extend_schema(
        tags=["sites"], summary="Change a member's role", request=MemberPatchIn, responses=MemberOut
    )
    def patch(self, request: Request, slug: str, pk: int) -> Response:
        caller, membership = self._get(request, slug, pk)
        data = MemberPatchIn(data=request.data)
        data.is_valid(raise_exception=True)
        membership = services.membership_update(
            caller=caller, membership=membership, role=data.validated_data["role"]
        )
        return Response(MemberOut(membership).data)

    @extend_schema(tags=["sites"], summary="Remove a member", responses={204: None})
    def delete(self, request: Request, slug: str, pk: int) -> Response:
        caller, membership = self._get(request, slug, pk)
        services.membership_remove(caller=caller, membership=membership)
        return Response(status=status.HTTP_204_NO_CONTENT)


class TokenOut(serializers.ModelSerializer):
    site = serializers.CharField(source="site.slug")

    class Meta:
        model = ApiToken
        fields = [
            "id",
            "name",
            "site",
            "kind",
            "role",
            "prefix",
            "created_at",
            "last_used_at",
            "expires_at",
            "revoked_at",
        ]


class TokenCreatedOut(TokenOut):
    token = serializers.CharField(help_text="Shown once. Store it in your system's secret store.")

    class Meta(TokenOut.Meta):
        fields = [*TokenOut.Meta.fields, "token"]


class TokenIn(StrictSerializer):
    name = serializers.CharField(max_length=100)
    kind = serializers.ChoiceField(
        choices=[TokenKind.SYSTEM, TokenKind.AGENT], default=TokenKind.SYSTEM
    )
    role = serializers.ChoiceField(choices=Role.choices, default=Role.CLINICIAN)
    expires_in_days = serializers.IntegerField(
        min_value=1, max_value=3650, required=False, allow_null=True
    )


class TokenListApi(generics.ListCreateAPIView):
    serializer_class = TokenOut
    filterset_fields = ["kind", "role"]
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "tokens"

    def get_throttles(self):  # type: ignore[no-untyped-def]
        return super().get_throttles() if self.request.method == "POST" else []

    def get_queryset(self):  # type: ignore[no-untyped-def]
        if getattr(self, "swagger_fake_view", False):  # schema generation: no request to scope by
            return self.serializer_class.Meta.model.objects.none()
        caller = caller_from_request(self.request)
        return selectors.token_list(caller=caller, site_id=caller.member_site(self.kwargs["slug"]))

    @extend_schema(
        tags=["sites"],
        summary="Create an API token (shown once)",
        request=TokenIn,
        responses={201: TokenCreatedOut},
    )
    def post(self, request: Request, slug: str) -> Response:
        caller = caller_from_request(request)
        site = services.site_for_member(caller=caller, slug=slug)
        data = TokenIn(data=request.data)
        data.is_valid(raise_exception=True)
        token, plaintext = services.token_create(caller=caller, site=site, **data.validated_data)
        token.token = plaintext  # type: ignore[attr-defined]
        return Response(TokenCreatedOut(token).data, status=status.HTTP_201_CREATED)


class TokenRevokeApi(APIView):
    @extend_schema(tags=["sites"], summary="Revoke an API token", request=None, responses=TokenOut)
    def post(self, request: Request, slug: str, pk: int) -> Response:
        caller = caller_from_request(request)
        token = (
            selectors.token_list(caller=caller, site_id=caller.member_site(slug))
            .filter(pk=pk)
            .first()
        )
        if token is None:
            raise NotFound("There is no such token at this site.")
        return Response(TokenOut(services.token_revoke(caller=caller, token=token)).data)
