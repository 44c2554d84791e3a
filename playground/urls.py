from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", include("sysops.urls")),
]

# Pages that say what went wrong and what to do: an unknown Host names the setting to change, a
# database that cannot be written is a 503 "try again".
handler400 = "sysops.errors.bad_request"
handler500 = "sysops.errors.server_error"
