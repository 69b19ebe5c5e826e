"""Reviews: reviews due, actions overdue, the organisation's matrix."""

from django.urls import path

from . import views_incident_review, views_reviews

urlpatterns = [
    path("reviews/", views_reviews.reviews_due, name="reviews-due"),
    path("<int:pk>/review/", views_incident_review.assessment_review, name="assessment-review"),
    path("actions/", views_reviews.actions_overdue, name="actions-overdue"),
    path("actions/<int:pk>/done/", views_reviews.action_done, name="action-done"),
    path("matrix/<int:organisation_pk>/", views_reviews.matrix, name="matrix"),
]
