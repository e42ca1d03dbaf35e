from django.urls import path

from pollen.accounts import apis, invitation_apis
from pollen.audit.apis import AuditEventListApi

urlpatterns = [
    path("auth/login/", apis.LoginApi.as_view(), name="auth-login"),
    path("auth/logout/", apis.LogoutApi.as_view(), name="auth-logout"),
    path("auth/me/", apis.MeApi.as_view(), name="auth-me"),
    path("auth/csrf/", apis.CsrfApi.as_view(), name="auth-csrf"),
    path("sites/", apis.SiteListApi.as_view(), name="site-list"),
    path("sites/<str:slug>/", apis.SiteDetailApi.as_view(), name="site-detail"),
    path("sites/<str:slug>/members/", apis.MemberListApi.as_view(), name="member-list"),
    path(
        "sites/<str:slug>/members/<int:pk>/", apis.MemberDetailApi.as_view(), name="member-detail"
    ),
    path(
        "sites/<str:slug>/invitations/",
        invitation_apis.InvitationListApi.as_view(),
        name="invitation-list",
    ),
    path(
        "sites/<str:slug>/invitations/<int:pk>/revoke/",
        invitation_apis.InvitationRevokeApi.as_view(),
        name="invitation-revoke",
    ),
    path(
        "invitations/preview/",
        invitation_apis.InvitationPreviewApi.as_view(),
        name="invitation-preview",
    ),
    path(
        "invitations/accept/",
        invitation_apis.InvitationAcceptApi.as_view(),
        name="invitation-accept",
    ),
    path("sites/<str:slug>/tokens/", apis.TokenListApi.as_view(), name="token-list"),
    path(
        "sites/<str:slug>/tokens/<int:pk>/revoke/",
        apis.TokenRevokeApi.as_view(),
        name="token-revoke",
    ),
    path("sites/<str:slug>/audit/", AuditEventListApi.as_view(), name="audit-list"),
]
