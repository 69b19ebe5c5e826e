from django.urls import path

from . import views

app_name = "accounts"

urlpatterns = [
    path("login/", views.login_view, name="login"),
    path("login/verify/", views.verify, name="verify"),
    path("logout/", views.logout_view, name="logout"),
    path("two-factor/", views.two_factor_setup, name="two-factor-setup"),
    path("two-factor/backup-codes/", views.backup_codes, name="backup-codes"),
    path("two-factor/backup-codes/new/", views.backup_codes_regenerate, name="backup-codes-regenerate"),
    path("security/", views.security, name="security"),
    path("security/email/", views.email_preferences, name="email-preferences"),
    path("security/password/", views.PasswordChangeView.as_view(), name="password-change"),
    path("confirm/", views.confirm, name="confirm"),
    path("password-reset/", views.PasswordResetView.as_view(), name="password-reset"),
    path("password-reset/sent/", views.PasswordResetDoneView.as_view(), name="password-reset-done"),
    path(
        "password-reset/<uidb64>/<token>/",
        views.PasswordResetConfirmView.as_view(),
        name="password-reset-confirm",
    ),
    path("password-reset/done/", views.PasswordResetCompleteView.as_view(), name="password-reset-complete"),
]
