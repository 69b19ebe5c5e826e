"""Sign-off: submit, the DPO's advice and queue, the controller's decision, the SIRO's signature, versions."""

from django.urls import path

from . import views_workflow as views

urlpatterns = [
    path("dpo/", views.dpo_queue, name="dpo-queue"),
    path("versions/<int:pk>/submit/", views.submit, name="submit"),
    path("versions/<int:pk>/advise/", views.advise, name="advise"),
    path("versions/<int:pk>/decide/", views.decide, name="decide"),
    path("versions/<int:pk>/sign/", views.sign, name="sign"),
    path("versions/<int:pk>/seen/", views.mark_seen, name="mark-seen"),
    path("<int:pk>/revise/", views.revise, name="revise"),
    path("<int:pk>/versions/", views.versions, name="versions"),
    path("<int:pk>/compare/", views.compare, name="compare"),
]
