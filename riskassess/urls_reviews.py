"""Reviews: reviews due, actions overdue, the organisation's matrix."""

urlpatterns = []
